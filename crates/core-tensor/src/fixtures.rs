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
//! <cache>/cifar10/cifar-10-images.tar.gz
//! <cache>/cifar10/cifar-10-images/{train,test}/{class}/NNNN.jpg   (unpacked by fetch)
//! <cache>/cifar10/cifar-10-images.tree.json                       (its record: a TreeRecord)
//! <cache>/pneumoniamnist/pneumoniamnist.npz
//! ```
//!
//! A dataset file is found by [`fixture_path`]; a folder that `cargo xtask fetch` unpacked from
//! an archive (`extract = true` in the manifest) by [`fixture_dir`], or by
//! [`Manifest::fixture_dir`], which also checks the recorded tree against the manifest's.

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

/// The record `cargo xtask fetch` writes beside a folder it unpacked:
/// `<cache>/<dataset>/<folder>.tree.json`.
pub fn tree_record_path(cache: &Path, dataset: &str, folder: &str) -> PathBuf {
    cache.join(dataset).join(format!("{folder}.tree.json"))
}

/// What `cargo xtask fetch` records beside a folder it unpacked from an archive, once a listing
/// of the folder gave the manifest's tree ([`tree_record_path`]). While a folder is being
/// replaced there is no record, so its presence means the unpacking completed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TreeRecord {
    /// The archive's name in `<cache>/<dataset>/`.
    pub archive: String,
    /// Its sha256.
    pub archive_sha256: String,
    /// The tree found in the folder.
    pub tree: ManifestTree,
}

/// The record of the unpacked `folder` of `dataset` in `cache` ([`TreeRecord`]).
///
/// Returns [`Error::MissingFixture`] when the folder is absent, and an [`Error::Format`] that
/// says to run `cargo xtask fetch <dataset>` when something else is there, when the record is
/// missing (an interrupted or partial unpacking), unreadable, or about another folder, or when
/// its counts do not add up.
pub fn tree_record(cache: &Path, dataset: &str, folder: &str) -> Result<TreeRecord> {
    let dir = cache.join(dataset).join(folder);
    let fix = format!("unpack it again with `cargo xtask fetch {dataset}`");
    match std::fs::metadata(&dir) {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => {
            return Err(Error::format(
                dir,
                format!("expected an unpacked dataset folder here, found something else; {fix}"),
            ));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::MissingFixture {
                path: dir,
                dataset: dataset.to_string(),
            });
        }
        Err(e) => return Err(Error::io(dir, e)),
    }
    let path = tree_record_path(cache, dataset, folder);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::format(
                dir,
                format!(
                    "no record {} of a completed unpacking: the folder may be partial (an \
                     interrupted fetch); {fix}",
                    path.display()
                ),
            ));
        }
        Err(e) => return Err(Error::io(path, e)),
    };
    let record: TreeRecord = serde_json::from_slice(&bytes)
        .map_err(|e| Error::format(&path, format!("unreadable record ({e}); {fix}")))?;
    let sum: u64 = record.tree.counts.values().sum();
    if record.tree.root != folder || sum != record.tree.files {
        return Err(Error::format(
            path,
            format!(
                "the record is of folder {:?} with {} files ({sum} by its counts), not of {folder:?}; {fix}",
                record.tree.root, record.tree.files
            ),
        ));
    }
    Ok(record)
}

/// The path of the unpacked `folder` of `dataset` in `cache`, checked cheaply: the folder is
/// there and `cargo xtask fetch` recorded a completed unpacking of it ([`tree_record`], whose
/// errors it returns). Nothing under the folder is listed; [`Manifest::fixture_dir`] also
/// checks the record against the manifest's tree.
pub fn fixture_dir(cache: &Path, dataset: &str, folder: &str) -> Result<PathBuf> {
    tree_record(cache, dataset, folder)?;
    Ok(cache.join(dataset).join(folder))
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
    /// For an archive that `cargo xtask fetch` unpacks (`extract = true`): the tree it
    /// unpacks to, `[datasets.X.files.tree]`.
    #[serde(default)]
    pub tree: Option<ManifestTree>,
}

/// The tree an archive unpacks to, `<cache>/<dataset>/<root>/`: names and sizes of its
/// regular files, summarised (empty folders are not part of it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestTree {
    /// The archive's top folder, unpacked as `<cache>/<dataset>/<root>/`.
    pub root: String,
    /// Regular files under it.
    pub files: u64,
    /// Their total size in bytes.
    pub bytes: u64,
    /// sha256 of the lines `<name>\t<size>\n`, one per file, sorted by name, where the name is
    /// relative to the root with `/` between folders.
    pub sha256: String,
    /// Files per folder, by the folder's name relative to the root (`.` for the root itself),
    /// e.g. `train/cat` → 5000.
    pub counts: BTreeMap<String, u64>,
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
    /// inputs they make: `dataset:<dataset>/<file>` → sha256, for a run's key, and for an
    /// unpacked archive also `dataset:<dataset>/<root>/` → its tree's sha256.
    ///
    /// A file is hashed at most once per process, and not at all when its verification stamp
    /// (written the first time it matched) still records its size and modification time.
    /// A missing file is [`Error::MissingFixture`]; a file of the wrong size or content is an
    /// [`Error::Format`] naming it, both values, and the command that repairs it. An unpacked
    /// folder is checked as by [`Manifest::fixture_dir`].
    pub fn verify(&self, cache: &Path, dataset: &str) -> Result<BTreeMap<String, String>> {
        let mut inputs = BTreeMap::new();
        for f in &self.dataset(dataset)?.files {
            let path = fixture_path(cache, dataset, &f.name)?;
            verify_file(&path, dataset, f)?;
            inputs.insert(format!("dataset:{dataset}/{}", f.name), f.sha256.clone());
            if let Some(tree) = &f.tree {
                check_tree(cache, dataset, f, tree)?;
                inputs.insert(
                    format!("dataset:{dataset}/{}/", tree.root),
                    tree.sha256.clone(),
                );
            }
        }
        Ok(inputs)
    }

    /// The path of the unpacked `folder` of `dataset` in `cache`, checked cheaply against the
    /// manifest: [`fixture_dir`]'s checks, and the recorded tree (files per folder, total size,
    /// tree hash) and archive checksum are the manifest's. Nothing under the folder is listed
    /// or read (`cargo xtask fetch` lists it, names and sizes, on every run).
    ///
    /// An error says what differs and to run `cargo xtask fetch <dataset>`; a `folder` that no
    /// file of the dataset unpacks to is an [`Error::InvalidArgument`] naming those there are.
    pub fn fixture_dir(&self, cache: &Path, dataset: &str, folder: &str) -> Result<PathBuf> {
        let files = &self.dataset(dataset)?.files;
        let found = files
            .iter()
            .find_map(|f| f.tree.as_ref().filter(|t| t.root == folder).map(|t| (f, t)));
        let Some((file, tree)) = found else {
            let roots: Vec<&str> = files
                .iter()
                .filter_map(|f| f.tree.as_ref().map(|t| t.root.as_str()))
                .collect();
            return Err(Error::InvalidArgument(format!(
                "no file of dataset {dataset:?} in the manifest unpacks to {folder:?}; its \
                 unpacked folders are {roots:?}"
            )));
        };
        check_tree(cache, dataset, file, tree)?;
        Ok(cache.join(dataset).join(folder))
    }
}

/// Checks the record of the folder `file` unpacks to against the manifest's `tree`.
fn check_tree(cache: &Path, dataset: &str, file: &ManifestFile, tree: &ManifestTree) -> Result<()> {
    let record = tree_record(cache, dataset, &tree.root)?;
    let mut differences = Vec::new();
    if !record.archive_sha256.eq_ignore_ascii_case(&file.sha256) {
        differences.push(format!(
            "unpacked from an archive with sha256 {}, the manifest's {} has {}",
            record.archive_sha256, file.name, file.sha256
        ));
    }
    let found = &record.tree;
    if found.files != tree.files {
        differences.push(format!("{} files, expected {}", found.files, tree.files));
    }
    if found.bytes != tree.bytes {
        differences.push(format!("{} bytes, expected {}", found.bytes, tree.bytes));
    }
    let folders: std::collections::BTreeSet<&String> =
        tree.counts.keys().chain(found.counts.keys()).collect();
    for k in folders {
        let (e, f) = (
            tree.counts.get(k).copied().unwrap_or(0),
            found.counts.get(k).copied().unwrap_or(0),
        );
        if e != f {
            differences.push(format!("{k}/ has {f} files, expected {e}"));
        }
    }
    if !found.sha256.eq_ignore_ascii_case(&tree.sha256) {
        differences.push(format!(
            "tree sha256 {}, expected {}",
            found.sha256, tree.sha256
        ));
    }
    if differences.is_empty() {
        return Ok(());
    }
    Err(Error::format(
        cache.join(dataset).join(&tree.root),
        format!(
            "its recorded tree is not the manifest's ({}); unpack it again with `cargo xtask \
             fetch {dataset}`",
            differences.join("; ")
        ),
    ))
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
                        tree: None,
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
    /// A cache holding `toy/toy.tar` (its bytes) unpacked to `toy/pics/` with `record` beside
    /// it, and a manifest (parsed from TOML, as the project's) whose tree has two folders.
    fn unpacked(record: Option<&str>) -> (tempfile::TempDir, Manifest) {
        let cache = tempfile::tempdir().unwrap();
        let ds = cache.path().join("toy");
        std::fs::create_dir_all(ds.join("pics/train/cat")).unwrap();
        std::fs::write(ds.join("toy.tar"), b"archive").unwrap();
        if let Some(record) = record {
            std::fs::write(ds.join("pics.tree.json"), record).unwrap();
        }
        let sha = format!("{:x}", Sha256::digest(b"archive"));
        let text = format!(
            r#"
            [datasets.toy]
            title = "toy"
            license = "none"
            [[datasets.toy.files]]
            name = "toy.tar"
            sha256 = "{sha}"
            bytes = 7
            extract = true
            sources = [{{ mirror = "toy/toy.tar" }}]
            [datasets.toy.files.tree]
            root = "pics"
            files = 3
            bytes = 30
            sha256 = "{}"
            counts = {{ "train/cat" = 2, "test/cat" = 1 }}
            "#,
            "ab".repeat(32)
        );
        let path = cache.path().join("manifest.toml");
        std::fs::write(&path, text).unwrap();
        (cache, Manifest::load(&path).unwrap())
    }

    fn record_json(root: &str, train_cats: u64, archive: &[u8]) -> String {
        serde_json::json!({
            "archive": "toy.tar",
            "archive_sha256": format!("{:x}", Sha256::digest(archive)),
            "tree": {
                "root": root,
                "files": train_cats + 1,
                "bytes": 30,
                "sha256": "ab".repeat(32),
                "counts": { "train/cat": train_cats, "test/cat": 1 },
            },
        })
        .to_string()
    }

    #[test]
    fn fixture_dir_needs_the_folder_and_the_record_of_a_completed_unpacking() {
        let (cache, _) = unpacked(None);
        let c = cache.path();
        match fixture_dir(c, "toy", "absent") {
            Err(e @ Error::MissingFixture { .. }) => {
                assert!(e.to_string().contains("cargo xtask fetch toy"), "{e}")
            }
            other => panic!("expected MissingFixture, got {other:?}"),
        }
        let msg = fixture_dir(c, "toy", "pics").unwrap_err().to_string();
        assert!(
            msg.contains("pics.tree.json") && msg.contains("partial"),
            "{msg}"
        );
        assert!(msg.contains("cargo xtask fetch toy"), "{msg}");
        let msg = fixture_dir(c, "toy", "toy.tar").unwrap_err().to_string();
        assert!(msg.contains("found something else"), "{msg}");
        let record = c.join("toy/pics.tree.json");
        std::fs::write(&record, b"{ half a rec").unwrap();
        let msg = fixture_dir(c, "toy", "pics").unwrap_err().to_string();
        assert!(msg.contains("unreadable record"), "{msg}");
        std::fs::write(&record, record_json("other", 2, b"archive")).unwrap();
        let msg = fixture_dir(c, "toy", "pics").unwrap_err().to_string();
        assert!(msg.contains("\"other\""), "{msg}");
        std::fs::write(&record, record_json("pics", 2, b"archive")).unwrap();
        assert_eq!(fixture_dir(c, "toy", "pics").unwrap(), c.join("toy/pics"));
        let read = tree_record(c, "toy", "pics").unwrap();
        assert_eq!(read.tree.counts["train/cat"], 2);
        assert_eq!(tree_record_path(c, "toy", "pics"), record);
    }

    #[test]
    fn the_manifest_checks_the_recorded_tree_and_verify_names_it_as_an_input() {
        let (cache, m) = unpacked(Some(&record_json("pics", 2, b"archive")));
        let c = cache.path();
        assert_eq!(m.fixture_dir(c, "toy", "pics").unwrap(), c.join("toy/pics"));
        let inputs = m.verify(c, "toy").unwrap();
        assert_eq!(inputs["dataset:toy/pics/"], "ab".repeat(32));
        assert!(inputs.contains_key("dataset:toy/toy.tar"));
        let msg = m.fixture_dir(c, "toy", "nope").unwrap_err().to_string();
        assert!(msg.contains("[\"pics\"]"), "{msg}");

        // A record of a partial unpacking (one cat short) or of another archive.
        let record = c.join("toy/pics.tree.json");
        std::fs::write(&record, record_json("pics", 1, b"archive")).unwrap();
        let msg = m.fixture_dir(c, "toy", "pics").unwrap_err().to_string();
        assert!(msg.contains("train/cat/ has 1 files, expected 2"), "{msg}");
        assert!(msg.contains("cargo xtask fetch toy"), "{msg}");
        assert!(m.verify(c, "toy").is_err());
        std::fs::write(&record, record_json("pics", 2, b"another archive")).unwrap();
        let msg = m.fixture_dir(c, "toy", "pics").unwrap_err().to_string();
        assert!(
            msg.contains("unpacked from an archive with sha256"),
            "{msg}"
        );
        std::fs::remove_file(&record).unwrap();
        assert!(
            m.verify(c, "toy")
                .unwrap_err()
                .to_string()
                .contains("partial")
        );
    }
}
