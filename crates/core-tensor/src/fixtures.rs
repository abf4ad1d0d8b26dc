//! Where dataset files live, and checking them against a manifest of checksums.
//!
//! A function that reads datasets takes the cache folder as an argument; [`resolve_cache`]
//! turns an optional one into a folder: the argument, else `$TRANSFERLAB_CACHE` ([`CACHE_ENV`]),
//! else the per-user cache ([`user_cache_root`]`/fixtures`). (transferlab's own workspace
//! points `TRANSFERLAB_CACHE` at its ignored `.cache/fixtures`, which `cargo xtask fetch`
//! fills.) Layout, one folder per dataset name:
//!
//! ```text
//! <cache>/mnist/{train,t10k}-{images-idx3,labels-idx1}-ubyte     (decompressed IDX)
//! <cache>/fashion-mnist/ (same names as mnist)
//! <cache>/fsdd/free-spoken-digit-dataset.tar.gz
//! <cache>/orl-faces/orl_faces.tar.gz
//! <cache>/uci-digits/digits.csv.gz
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{Error, Result};

/// The environment variable that overrides the cache folder.
pub const CACHE_ENV: &str = "TRANSFERLAB_CACHE";

/// The per-user cache folder of transferlab, by platform convention: `$XDG_CACHE_HOME/transferlab`
/// or `~/.cache/transferlab` on Linux and other Unix systems, `~/Library/Caches/transferlab` on
/// macOS, `%LOCALAPPDATA%\transferlab` on Windows; `None` when the platform's variables are
/// not set.
pub fn user_cache_root() -> Option<PathBuf> {
    let var = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    let root = if cfg!(target_os = "windows") {
        var("LOCALAPPDATA")?
    } else if cfg!(target_os = "macos") {
        var("HOME")?.join("Library").join("Caches")
    } else {
        var("XDG_CACHE_HOME").or_else(|| var("HOME").map(|h| h.join(".cache")))?
    };
    Some(root.join("transferlab"))
}

/// The fixture cache when the caller names none: `$TRANSFERLAB_CACHE` if set and not empty,
/// else `<per-user cache>/fixtures` ([`user_cache_root`]), else `transferlab-cache/fixtures` in
/// the system's temporary folder. Nothing is guessed from the current folder or from where the
/// crate was compiled. The folder may not exist yet.
pub fn cache_dir() -> PathBuf {
    match std::env::var_os(CACHE_ENV) {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => user_cache_dir("fixtures"),
    }
}

/// `<per-user cache>/<sub>` ([`user_cache_root`]), or `transferlab-cache/<sub>` in the
/// system's temporary folder where the platform names no per-user cache.
pub fn user_cache_dir(sub: &str) -> PathBuf {
    user_cache_root()
        .unwrap_or_else(|| std::env::temp_dir().join("transferlab-cache"))
        .join(sub)
}

/// `explicit` if given, else [`cache_dir`]: how a function that takes an optional cache folder
/// resolves it (argument, then environment, then the per-user cache).
pub fn resolve_cache(explicit: Option<&Path>) -> PathBuf {
    explicit.map_or_else(cache_dir, Path::to_path_buf)
}

/// The path of `file` of `dataset` in `cache`, checked to exist.
///
/// Returns [`Error::MissingFixture`] (which tells the user to run `cargo xtask fetch
/// <dataset>`) when there is nothing there, and [`Error::Format`] when something other than a
/// file is.
pub fn fixture_path(cache: &Path, dataset: &str, file: &str) -> Result<PathBuf> {
    let path = cache.join(dataset).join(file);
    match std::fs::metadata(&path) {
        Ok(meta) if meta.is_file() => Ok(path),
        Ok(_) => Err(Error::format(
            path,
            "expected a dataset file here, found something else",
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(Error::MissingFixture {
            path,
            dataset: dataset.to_string(),
        }),
        Err(e) => Err(Error::io(path, e)),
    }
}

/// A manifest of fixture datasets (the project's is `fixtures/manifest.toml`): per dataset, the
/// files a cache holds with their size and sha256. Only what verification needs is read; sources and
/// titles are the fetcher's business.
#[derive(Debug, Clone, Deserialize)]
pub struct Manifest {
    /// Dataset name → its files.
    pub datasets: BTreeMap<String, ManifestDataset>,
}

/// One dataset of the [`Manifest`].
#[derive(Debug, Clone, Deserialize)]
pub struct ManifestDataset {
    /// The files the cache holds for it.
    pub files: Vec<ManifestFile>,
}

/// One file of a [`ManifestDataset`].
#[derive(Debug, Clone, Deserialize)]
pub struct ManifestFile {
    /// File name inside `<cache>/<dataset>/`.
    pub name: String,
    /// Lowercase hex sha256 of the bytes the cache stores.
    pub sha256: String,
    /// Their length.
    pub bytes: u64,
}

/// What a verification stamp (`<cache>/<dataset>/.<file>.verified`) records: the file's size and
/// modification time when its sha256 was last computed, so that a later process trusts the hash
/// without reading the file again until either changes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Stamp {
    bytes: u64,
    mtime_ns: u128,
    sha256: String,
}

/// Files already verified in this process: path → (size, mtime, sha256).
static VERIFIED: Mutex<BTreeMap<PathBuf, (u64, u128, String)>> = Mutex::new(BTreeMap::new());

fn size_and_mtime(path: &Path) -> Result<(u64, u128)> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    Ok((meta.len(), mtime))
}

/// Lowercase hex sha256 of a file, read in 1 MiB pieces.
pub fn sha256_file(path: &Path) -> Result<String> {
    use std::io::Read;
    let mut file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(format!("{:x}", hasher.finalize()))
}

impl Manifest {
    /// Reads a manifest file; errors name the file and the bad field.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        toml::from_str(&text).map_err(|e| Error::format(path, e.to_string()))
    }

    /// The entry of `dataset`, or an error listing the datasets there are.
    pub fn dataset(&self, dataset: &str) -> Result<&ManifestDataset> {
        self.datasets.get(dataset).ok_or_else(|| {
            Error::InvalidArgument(format!(
                "no dataset {dataset:?} in the manifest; it has {:?}",
                self.datasets.keys().collect::<Vec<_>>()
            ))
        })
    }

    /// Checks every file of `dataset` in `cache` against the manifest and returns the run
    /// inputs they make: `dataset:<dataset>/<file>` → sha256, for a run's key.
    ///
    /// A file is hashed at most once per process, and not at all when its verification stamp
    /// (written the first time it matched) still records its size and modification time.
    /// A missing file is [`Error::MissingFixture`]; a file of the wrong size or content is an
    /// [`Error::Format`] naming it, both values, and the command that repairs it.
    pub fn verify(&self, cache: &Path, dataset: &str) -> Result<BTreeMap<String, String>> {
        let mut inputs = BTreeMap::new();
        for f in &self.dataset(dataset)?.files {
            let path = fixture_path(cache, dataset, &f.name)?;
            verify_file(&path, dataset, f)?;
            inputs.insert(format!("dataset:{dataset}/{}", f.name), f.sha256.clone());
        }
        Ok(inputs)
    }
}

fn stamp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.verified"))
}

fn verify_file(path: &Path, dataset: &str, f: &ManifestFile) -> Result<()> {
    let (bytes, mtime_ns) = size_and_mtime(path)?;
    let repair = || {
        format!(
            "the file is damaged or not the manifest's; repair it with `cargo xtask fetch {dataset}` (results of runs on it are not reused: run keys carry the checksum)"
        )
    };
    if bytes != f.bytes {
        return Err(Error::format(
            path,
            format!(
                "{bytes} bytes, the manifest says {} for {dataset}/{}; {}",
                f.bytes,
                f.name,
                repair()
            ),
        ));
    }
    let known = |sha: &str| sha == f.sha256;
    {
        let seen = VERIFIED.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((b, m, sha)) = seen.get(path)
            && (*b, *m) == (bytes, mtime_ns)
            && known(sha)
        {
            return Ok(());
        }
    }
    let stamp = stamp_path(path);
    let stamped = std::fs::read(&stamp)
        .ok()
        .and_then(|t| serde_json::from_slice::<Stamp>(&t).ok())
        .filter(|s| s.bytes == bytes && s.mtime_ns == mtime_ns && known(&s.sha256));
    if stamped.is_none() {
        let sha = sha256_file(path)?;
        if !known(&sha) {
            return Err(Error::format(
                path,
                format!(
                    "sha256 {sha}, the manifest says {} for {dataset}/{}; {}",
                    f.sha256,
                    f.name,
                    repair()
                ),
            ));
        }
        let record = Stamp {
            bytes,
            mtime_ns,
            sha256: sha,
        };
        // A stamp that cannot be written (a read-only cache) only costs a re-hash next time.
        if let Err(e) = crate::persist::write_json(&stamp, &record) {
            tracing::debug!(error = %e, "no verification stamp written");
        }
    }
    VERIFIED
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(path.to_path_buf(), (bytes, mtime_ns, f.sha256.clone()));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest_for(dataset: &str, name: &str, bytes: &[u8]) -> Manifest {
        Manifest {
            datasets: [(
                dataset.to_string(),
                ManifestDataset {
                    files: vec![ManifestFile {
                        name: name.into(),
                        sha256: format!("{:x}", Sha256::digest(bytes)),
                        bytes: bytes.len() as u64,
                    }],
                },
            )]
            .into(),
        }
    }

    #[test]
    fn verify_accepts_the_manifest_bytes_and_refuses_others() {
        let cache = tempfile::tempdir().unwrap();
        let dir = cache.path().join("toy");
        std::fs::create_dir_all(&dir).unwrap();
        let good = b"the manifest's bytes".to_vec();
        let m = manifest_for("toy", "data.bin", &good);
        std::fs::write(dir.join("data.bin"), &good).unwrap();
        let inputs = m.verify(cache.path(), "toy").unwrap();
        assert_eq!(
            inputs["dataset:toy/data.bin"],
            format!("{:x}", Sha256::digest(&good))
        );
        assert!(dir.join(".data.bin.verified").is_file(), "stamp written");
        // Same size, one byte changed: the mtime changes, so the stamp no longer vouches.
        std::thread::sleep(std::time::Duration::from_millis(20));
        let mut bad = good.clone();
        bad[3] ^= 0x40;
        std::fs::write(dir.join("data.bin"), &bad).unwrap();
        let msg = m.verify(cache.path(), "toy").unwrap_err().to_string();
        assert!(msg.contains("data.bin") && msg.contains("sha256"), "{msg}");
        assert!(msg.contains("cargo xtask fetch toy"), "{msg}");
        // Truncated: refused by size.
        std::fs::write(dir.join("data.bin"), &good[..5]).unwrap();
        let msg = m.verify(cache.path(), "toy").unwrap_err().to_string();
        assert!(msg.contains("5 bytes"), "{msg}");
        // Repaired: accepted again.
        std::fs::write(dir.join("data.bin"), &good).unwrap();
        m.verify(cache.path(), "toy").unwrap();
        // Missing.
        std::fs::remove_file(dir.join("data.bin")).unwrap();
        assert!(matches!(
            m.verify(cache.path(), "toy"),
            Err(Error::MissingFixture { .. })
        ));
        assert!(m.verify(cache.path(), "nope").is_err());
    }

    #[test]
    fn the_cache_is_the_argument_then_the_environment_then_the_user_cache() {
        let explicit = Path::new("/data/mine");
        assert_eq!(resolve_cache(Some(explicit)), explicit);
        match std::env::var_os(CACHE_ENV) {
            Some(v) if !v.is_empty() => assert_eq!(resolve_cache(None), PathBuf::from(v)),
            _ => assert_eq!(
                resolve_cache(None),
                user_cache_root().unwrap().join("fixtures")
            ),
        }
        if let Some(root) = user_cache_root() {
            assert!(root.ends_with("transferlab"), "{}", root.display());
        }
    }

    #[test]
    fn fixture_path_reports_missing_files() {
        let cache = tempfile::tempdir().unwrap();
        std::fs::create_dir(cache.path().join("mnist")).unwrap();
        std::fs::write(cache.path().join("mnist/present"), b"x").unwrap();
        assert_eq!(
            fixture_path(cache.path(), "mnist", "present").unwrap(),
            cache.path().join("mnist/present")
        );
        match fixture_path(cache.path(), "mnist", "absent") {
            Err(e @ Error::MissingFixture { .. }) => {
                let msg = e.to_string();
                assert!(msg.contains("cargo xtask fetch mnist"), "{msg}");
                assert!(msg.contains("mnist/absent"), "{msg}");
            }
            other => panic!("expected MissingFixture, got {other:?}"),
        }
        assert!(matches!(
            fixture_path(cache.path(), "fsdd", "x.tar.gz"),
            Err(Error::MissingFixture { ref dataset, .. }) if dataset == "fsdd"
        ));
        assert!(matches!(
            fixture_path(cache.path(), "", "mnist"),
            Err(Error::Format { .. })
        ));
    }
}
