//! `cargo xtask fetch [DATASET...]`: datasets into the fixture cache, verified by checksum.
//!
//! `fixtures/manifest.toml` lists, for every file, the sha256 and size of the payload the cache
//! must hold and an ordered list of sources: the canonical URLs, other installed copies (a
//! Debian package), and the local mirror folder (`TRANSFERLAB_DATA_MIRROR`, default
//! `../shared/data` beside the project root). Each source is tried in order; a download is
//! written to a temporary file beside its destination, checked, and only then renamed into
//! place. A cached file is re-hashed on every fetch: a corrupted or truncated one is fetched
//! again, a valid one is left alone.
//!
//! A file with `extract = true` is a tar archive (gzip or not) that is also unpacked, into
//! `<cache>/<dataset>/<tree.root>/`, and must give the tree its `[datasets.X.files.tree]`
//! table describes: files per folder, total bytes, and the sha256 of the sorted list of
//! (relative name, size) ([`Tree`]). The archive is unpacked into a temporary folder beside
//! that one, checked against the manifest's tree, and only then renamed into place; then
//! `<root>.tree.json` records the tree ([`TreeRecord`]). Every fetch lists the folder again
//! (names and sizes, nothing is read) and unpacks the archive afresh when a file is missing,
//! added or of another size, or the record is missing or stale. Members with an absolute path
//! or `..`, links and devices are refused.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::util::{cache_root, project_root, sha256_file};

/// Options of `cargo xtask fetch`.
#[derive(clap::Args, Debug, Default)]
pub struct Args {
    /// Datasets to fetch (default: all in the manifest).
    pub datasets: Vec<String>,
    /// Skip network sources (only installed copies and the mirror).
    #[arg(long)]
    pub offline: bool,
}

/// The fixture manifest (`fixtures/manifest.toml`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Datasets by name.
    pub datasets: BTreeMap<String, Dataset>,
}

/// One dataset of the manifest.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dataset {
    /// Human-readable name.
    pub title: String,
    /// License or terms of use.
    pub license: String,
    /// Files stored in `<cache>/<dataset>/`.
    pub files: Vec<FileEntry>,
}

/// One file of a dataset.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    /// Name in the cache.
    pub name: String,
    /// sha256 of the stored payload.
    pub sha256: String,
    /// Size of the stored payload in bytes.
    pub bytes: u64,
    /// Sources deliver gzip, the cache stores the decompressed payload (a source that
    /// delivers it uncompressed is accepted too).
    #[serde(default)]
    pub gunzip: bool,
    /// The file is a tar archive (gzip or not) to unpack into `<cache>/<dataset>/<tree.root>/`;
    /// needs `tree`.
    #[serde(default)]
    pub extract: bool,
    /// What the unpacked folder must hold (with `extract`).
    pub tree: Option<Tree>,
    /// Sources, tried in order.
    pub sources: Vec<Source>,
}

/// The tree an archive unpacks to (`[datasets.X.files.tree]`): names and sizes of its regular
/// files, summarised. Empty folders are not part of it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Tree {
    /// The archive's one top folder, unpacked as `<cache>/<dataset>/<root>/`; every member
    /// must lie inside it.
    pub root: String,
    /// Regular files under it.
    pub files: u64,
    /// Their total size in bytes.
    pub bytes: u64,
    /// sha256 of the lines `<name>\t<size>\n`, one per file, sorted by name, where the name is
    /// relative to the root with `/` between folders.
    pub sha256: String,
    /// Files per folder, by the folder's name relative to the root (`.` for the root itself).
    pub counts: BTreeMap<String, u64>,
}

/// What `<cache>/<dataset>/<root>.tree.json` records once an unpacked folder matched the
/// manifest (core-tensor's `fixtures::TreeRecord` reads the same file).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct TreeRecord {
    /// The archive's name in the cache.
    pub archive: String,
    /// Its sha256.
    pub archive_sha256: String,
    /// The tree found in the folder.
    pub tree: Tree,
}

/// Where a file can come from: exactly one of the fields.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct Source {
    /// An HTTP(S) URL.
    pub url: Option<String>,
    /// An absolute path on this machine (e.g. a Debian package's copy).
    pub path: Option<PathBuf>,
    /// A path relative to the mirror folder.
    pub mirror: Option<PathBuf>,
}

impl Manifest {
    /// Reads and checks a manifest.
    pub fn load(path: &Path) -> Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let manifest: Manifest =
            toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        for (name, ds) in &manifest.datasets {
            for f in &ds.files {
                let hex = f.sha256.len() == 64 && f.sha256.bytes().all(|b| b.is_ascii_hexdigit());
                anyhow::ensure!(
                    hex,
                    "{}: datasets.{name} file {}: sha256 must be 64 hex digits",
                    path.display(),
                    f.name
                );
                check_tree_entry(path, name, f)?;
                for s in &f.sources {
                    let n = [s.url.is_some(), s.path.is_some(), s.mirror.is_some()]
                        .iter()
                        .filter(|b| **b)
                        .count();
                    anyhow::ensure!(
                        n == 1,
                        "{}: datasets.{name} file {}: each source needs exactly one of url, path, mirror",
                        path.display(),
                        f.name
                    );
                }
            }
        }
        Ok(manifest)
    }

    /// The project's manifest.
    pub fn project() -> Result<Self> {
        Self::load(&project_root().join("fixtures").join("manifest.toml"))
    }
}

/// Checks `extract` and `tree` of one file entry: both or neither, a root that is one plain
/// folder name, a hex sha256, counts that add up to `files`.
fn check_tree_entry(path: &Path, name: &str, f: &FileEntry) -> Result<()> {
    let at = || format!("{}: datasets.{name} file {}", path.display(), f.name);
    let tree = match (&f.tree, f.extract) {
        (None, false) => return Ok(()),
        (Some(tree), true) => tree,
        (None, true) => bail!(
            "{}: extract = true needs a [datasets.{name}.files.tree] table after it (root, files, \
             bytes, sha256, counts: the tree the archive must unpack to)",
            at()
        ),
        (Some(_), false) => bail!(
            "{}: a tree table but no extract = true; add `extract = true` to unpack the archive, \
             or remove the table",
            at()
        ),
    };
    let mut parts = Path::new(&tree.root).components();
    let plain = matches!(parts.next(), Some(Component::Normal(_)))
        && parts.next().is_none()
        && !tree.root.starts_with('.');
    anyhow::ensure!(
        plain,
        "{}: tree.root = {:?} must be one folder name (no `/`, `..` or leading `.`): the \
         archive's top folder",
        at(),
        tree.root
    );
    let hex = tree.sha256.len() == 64 && tree.sha256.bytes().all(|b| b.is_ascii_hexdigit());
    anyhow::ensure!(hex, "{}: tree.sha256 must be 64 hex digits", at());
    let sum: u64 = tree.counts.values().sum();
    anyhow::ensure!(
        sum == tree.files,
        "{}: tree.counts add up to {sum} files, but tree.files = {}",
        at(),
        tree.files
    );
    Ok(())
}

/// Where fetched files go and where the sources are.
#[derive(Debug, Clone)]
pub struct Fetcher {
    /// The cache folder (`TRANSFERLAB_CACHE`, default `.cache/fixtures`).
    pub cache: PathBuf,
    /// The mirror folder, if any.
    pub mirror: Option<PathBuf>,
    /// Try URL sources.
    pub network: bool,
    /// Connect timeout for URL sources.
    pub connect_timeout: Duration,
}

/// What fetching one file did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The cached copy verified; nothing was read from any source.
    Verified,
    /// The file was absent and was fetched from the named source.
    Fetched(String),
    /// The cached copy was corrupted or truncated and was fetched again.
    Repaired(String),
    /// The cached archive verified, but the folder it unpacks to was absent, partial, damaged
    /// or unrecorded (the reason): it was unpacked again.
    Extracted(String),
}

impl Fetcher {
    /// The fetcher for this project and environment.
    pub fn from_env(offline: bool) -> Self {
        let cache = std::env::var_os("TRANSFERLAB_CACHE")
            .map(PathBuf::from)
            .unwrap_or_else(|| cache_root().join("fixtures"));
        let mirror = match std::env::var_os("TRANSFERLAB_DATA_MIRROR") {
            Some(dir) => Some(PathBuf::from(dir)),
            None => {
                let default = project_root().join("..").join("shared").join("data");
                std::fs::canonicalize(&default).ok().filter(|d| d.is_dir())
            }
        };
        Fetcher {
            cache,
            mirror,
            network: !offline,
            connect_timeout: Duration::from_secs(5),
        }
    }

    /// Makes `<cache>/<dataset>/<file.name>` hold the verified payload, and for an archive
    /// with `extract`, `<cache>/<dataset>/<tree.root>/` its verified unpacked tree.
    pub fn fetch_file(&self, dataset: &str, file: &FileEntry) -> Result<Outcome> {
        let outcome = self.fetch_payload(dataset, file)?;
        match &file.tree {
            Some(tree) if file.extract => self.ensure_tree(dataset, file, tree, outcome),
            _ => Ok(outcome),
        }
    }

    /// Makes `<cache>/<dataset>/<tree.root>/` hold the tree the manifest describes, unpacking
    /// the (verified) archive when it does not; holds `.<root>.lock` meanwhile, so that two
    /// fetches do not unpack into the same folder at once.
    fn ensure_tree(
        &self,
        dataset: &str,
        file: &FileEntry,
        tree: &Tree,
        outcome: Outcome,
    ) -> Result<Outcome> {
        let dir = self.cache.join(dataset);
        let folder = dir.join(&tree.root);
        let lock_path = dir.join(format!(".{}.lock", tree.root));
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .with_context(|| format!("opening {}", lock_path.display()))?;
        lock.lock()
            .with_context(|| format!("locking {}", lock_path.display()))?;
        let Some(problem) = tree_problem(&dir, file, tree) else {
            return Ok(outcome);
        };
        let record = record_path(&dir, tree);
        let first = !folder.exists() && !record.exists();
        if !first {
            eprintln!(
                "fetch: {}: {problem}; unpacking {} again",
                folder.display(),
                file.name
            );
        }
        // No record while the folder is replaced: an interrupted fetch leaves none, so readers
        // (core-tensor's fixture_dir) refuse the folder until a fetch completes.
        remove_if_present(&record)?;
        remove_temporaries(&dir, &tree.root)?;
        let start = Instant::now();
        let found = extract(&dir.join(&file.name), &dir, dataset, tree)?;
        let record_value = TreeRecord {
            archive: file.name.clone(),
            archive_sha256: file.sha256.to_ascii_lowercase(),
            tree: found,
        };
        let text = serde_json::to_vec_pretty(&record_value).expect("a record serialises");
        crate::util::write_atomic(&record, &text)?;
        eprintln!(
            "fetch: {dataset}/{}: unpacked {} files ({} bytes) in {:.1} s",
            tree.root,
            tree.files,
            tree.bytes,
            start.elapsed().as_secs_f64()
        );
        drop(lock);
        Ok(match outcome {
            Outcome::Verified => Outcome::Extracted(problem),
            other => other,
        })
    }

    /// Makes `<cache>/<dataset>/<file.name>` hold the verified payload.
    fn fetch_payload(&self, dataset: &str, file: &FileEntry) -> Result<Outcome> {
        let dest = self.cache.join(dataset).join(&file.name);
        let mut repaired = false;
        if dest.exists() {
            match verify(&dest, file) {
                Ok(()) => return Ok(Outcome::Verified),
                Err(problem) => {
                    eprintln!("fetch: {}: {problem}; fetching it again", dest.display());
                    repaired = true;
                }
            }
        }
        std::fs::create_dir_all(dest.parent().expect("dest has a parent"))
            .with_context(|| format!("creating {}", self.cache.join(dataset).display()))?;
        let mut failures = Vec::new();
        for source in &file.sources {
            let label = self.describe(source);
            match self.try_source(source, file, &dest) {
                Ok(()) => {
                    return Ok(if repaired {
                        Outcome::Repaired(label)
                    } else {
                        Outcome::Fetched(label)
                    });
                }
                Err(e) => failures.push(format!("  - {label}: {e:#}")),
            }
        }
        bail!(
            "could not fetch {dataset}/{}; every source failed:\n{}\nfix: connect to the network, \
             or set TRANSFERLAB_DATA_MIRROR to a folder holding {dataset}/ as in the manifest",
            file.name,
            failures.join("\n")
        )
    }

    fn describe(&self, source: &Source) -> String {
        match (&source.url, &source.path, &source.mirror) {
            (Some(url), _, _) => url.clone(),
            (_, Some(path), _) => path.display().to_string(),
            (_, _, Some(rel)) => match &self.mirror {
                Some(dir) => format!("mirror {}", dir.join(rel).display()),
                None => format!("mirror <none>/{}", rel.display()),
            },
            _ => "<empty source>".into(),
        }
    }

    fn try_source(&self, source: &Source, file: &FileEntry, dest: &Path) -> Result<()> {
        let (reader, len): (Box<dyn Read>, Option<u64>) = if let Some(url) = &source.url {
            if !self.network {
                bail!("skipped (offline)");
            }
            let agent = ureq::AgentBuilder::new()
                .timeout_connect(self.connect_timeout)
                .timeout_read(Duration::from_secs(30))
                .try_proxy_from_env(true)
                .build();
            let response = agent.get(url).call().map_err(|e| {
                // ureq's message repeats the URL, which the caller's report already names.
                let text = e.to_string();
                anyhow::anyhow!(
                    "{}",
                    text.strip_prefix(&format!("{url}: ")).unwrap_or(&text)
                )
            })?;
            let len = response
                .header("Content-Length")
                .and_then(|v| v.parse().ok());
            (Box::new(response.into_reader()), len)
        } else {
            let path = match (&source.path, &source.mirror, &self.mirror) {
                (Some(p), _, _) => p.clone(),
                (_, Some(rel), Some(dir)) => dir.join(rel),
                _ => bail!(
                    "no mirror folder: set TRANSFERLAB_DATA_MIRROR (the default ../shared/data \
                     beside the project root does not exist)"
                ),
            };
            let f = File::open(&path).map_err(|e| anyhow::anyhow!("{e}"))?;
            let len = f.metadata().ok().map(|m| m.len());
            (Box::new(f), len)
        };
        let bar = progress_bar(&file.name, len);
        let reader = BufReader::new(bar.wrap_read(reader));
        let result = write_verified(reader, file, dest);
        bar.finish_and_clear();
        result
    }
}

/// Checks a cached file's size and sha256.
fn verify(path: &Path, file: &FileEntry) -> Result<(), String> {
    let len = std::fs::metadata(path).map_err(|e| e.to_string())?.len();
    if len != file.bytes {
        return Err(format!(
            "{len} bytes, expected {} (truncated or corrupted)",
            file.bytes
        ));
    }
    let sum = sha256_file(path).map_err(|e| e.to_string())?;
    if !sum.eq_ignore_ascii_case(&file.sha256) {
        return Err(format!(
            "sha256 {sum}, expected {} (corrupted)",
            file.sha256
        ));
    }
    Ok(())
}

/// Streams `reader` (gunzipped when asked and gzip-framed) into `dest` atomically
/// ([`crate::util::write_atomic_with`]), hashing as it goes; fails, leaving `dest` as it was and
/// no temporary file, unless size and hash match.
fn write_verified(mut reader: impl std::io::BufRead, file: &FileEntry, dest: &Path) -> Result<()> {
    let is_gzip = reader.fill_buf()?.starts_with(&[0x1f, 0x8b]);
    let mut payload: Box<dyn Read + '_> = if file.gunzip && is_gzip {
        Box::new(flate2::bufread::MultiGzDecoder::new(reader))
    } else {
        Box::new(reader)
    };
    crate::util::write_atomic_with(dest, |out| {
        let mut hasher = Sha256::new();
        let mut total = 0u64;
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = payload
                .read(&mut buf)
                .map_err(|e| std::io::Error::other(format!("reading the source: {e}")))?;
            if n == 0 {
                break;
            }
            total += n as u64;
            if total > file.bytes {
                return Err(std::io::Error::other(format!(
                    "longer than the expected {} bytes",
                    file.bytes
                )));
            }
            hasher.update(&buf[..n]);
            out.write_all(&buf[..n])?;
        }
        if total != file.bytes {
            return Err(std::io::Error::other(format!(
                "{total} bytes, expected {} (truncated)",
                file.bytes
            )));
        }
        let sum = format!("{:x}", hasher.finalize());
        if !sum.eq_ignore_ascii_case(&file.sha256) {
            return Err(std::io::Error::other(format!(
                "checksum mismatch: sha256 {sum}, expected {}",
                file.sha256
            )));
        }
        Ok(())
    })
}

/// `<dir>/<root>.tree.json`, the record of an unpacked folder.
fn record_path(dir: &Path, tree: &Tree) -> PathBuf {
    dir.join(format!("{}.tree.json", tree.root))
}

/// Why `<dir>/<tree.root>/` is not the manifest's unpacked tree of `file`, or `None` when it
/// is: its record is present and names this archive and tree, and a listing of the folder
/// (names and sizes only) gives the manifest's tree.
fn tree_problem(dir: &Path, file: &FileEntry, tree: &Tree) -> Option<String> {
    let record_path = record_path(dir, tree);
    let record: TreeRecord = match std::fs::read(&record_path) {
        Ok(bytes) => match serde_json::from_slice(&bytes) {
            Ok(record) => record,
            Err(e) => return Some(format!("unreadable record {} ({e})", record_path.display())),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Some(format!(
                "no record {} of a completed unpacking",
                record_path.display()
            ));
        }
        Err(e) => return Some(format!("{}: {e}", record_path.display())),
    };
    if !record.archive_sha256.eq_ignore_ascii_case(&file.sha256) || record.tree != *tree {
        return Some(format!(
            "its record {} is of another archive or tree than the manifest's",
            record_path.display()
        ));
    }
    match scan_tree(&dir.join(&tree.root), &tree.root) {
        Ok(found) => tree_difference(tree, &found),
        Err(e) => Some(format!("{e:#}")),
    }
}

/// The tree under `folder`, from its names and sizes (no file is read); an entry that is
/// neither a regular file nor a folder (a link) or a name that is not UTF-8 is an error.
fn scan_tree(folder: &Path, root: &str) -> Result<Tree> {
    let mut files = Vec::new();
    let mut pending = vec![(folder.to_path_buf(), String::new())];
    while let Some((path, rel)) = pending.pop() {
        let entries =
            std::fs::read_dir(&path).with_context(|| format!("listing {}", path.display()))?;
        for entry in entries {
            let entry = entry.with_context(|| format!("listing {}", path.display()))?;
            let Ok(name) = entry.file_name().into_string() else {
                bail!("{}: a name that is not UTF-8", entry.path().display());
            };
            let name = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            let kind = entry
                .file_type()
                .with_context(|| format!("reading {}", entry.path().display()))?;
            if kind.is_dir() {
                pending.push((entry.path(), name));
            } else if kind.is_file() {
                let meta = entry
                    .metadata()
                    .with_context(|| format!("reading {}", entry.path().display()))?;
                files.push((name, meta.len()));
            } else {
                bail!("{}: neither a file nor a folder", entry.path().display());
            }
        }
    }
    Ok(tree_of(root, files))
}

/// The [`Tree`] of (relative name, size) pairs.
fn tree_of(root: &str, mut files: Vec<(String, u64)>) -> Tree {
    files.sort();
    let mut hasher = Sha256::new();
    let mut counts = BTreeMap::new();
    for (name, size) in &files {
        hasher.update(format!("{name}\t{size}\n").as_bytes());
        let folder = name.rsplit_once('/').map_or(".", |(folder, _)| folder);
        *counts.entry(folder.to_string()).or_insert(0u64) += 1;
    }
    Tree {
        root: root.to_string(),
        files: files.len() as u64,
        bytes: files.iter().map(|(_, size)| size).sum(),
        sha256: format!("{:x}", hasher.finalize()),
        counts,
    }
}

/// How `found` differs from `expected` in words (counts, folders, bytes), or `None`.
fn tree_difference(expected: &Tree, found: &Tree) -> Option<String> {
    let same = expected.files == found.files
        && expected.bytes == found.bytes
        && expected.counts == found.counts
        && expected.sha256.eq_ignore_ascii_case(&found.sha256);
    if same {
        return None;
    }
    let mut parts = Vec::new();
    if expected.files != found.files {
        parts.push(format!(
            "{} files, expected {}",
            found.files, expected.files
        ));
    }
    if expected.bytes != found.bytes {
        parts.push(format!(
            "{} bytes, expected {}",
            found.bytes, expected.bytes
        ));
    }
    let folders: std::collections::BTreeSet<&String> =
        expected.counts.keys().chain(found.counts.keys()).collect();
    let differing: Vec<String> = folders
        .into_iter()
        .filter_map(|k| {
            let (e, f) = (
                expected.counts.get(k).copied().unwrap_or(0),
                found.counts.get(k).copied().unwrap_or(0),
            );
            (e != f).then(|| format!("{k}/ has {f} files, expected {e}"))
        })
        .collect();
    if differing.len() > 5 {
        parts.extend(differing[..5].iter().cloned());
        parts.push(format!("{} more folders differ", differing.len() - 5));
    } else {
        parts.extend(differing);
    }
    if parts.is_empty() {
        parts.push("the same counts and total size, but other names or sizes".into());
    }
    parts.push(format!(
        "tree sha256 {}, expected {}",
        found.sha256, expected.sha256
    ));
    Some(parts.join("; "))
}

/// Removes the file `path` if it is there.
fn remove_if_present(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("removing {}", path.display()))
        }
        _ => Ok(()),
    }
}

/// Removes what an interrupted unpacking of `root` in `dir` left (`.<root>.extract-*`,
/// `.<root>.old-*`); the caller holds the lock.
fn remove_temporaries(dir: &Path, root: &str) -> Result<()> {
    let prefixes = [format!(".{root}.extract-"), format!(".{root}.old-")];
    for entry in std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let entry = entry.with_context(|| format!("listing {}", dir.display()))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if prefixes.iter().any(|p| name.starts_with(p.as_str())) {
            remove_any(&entry.path())?;
        }
    }
    Ok(())
}

/// Removes a folder with everything in it, or a file.
fn remove_any(path: &Path) -> Result<()> {
    let result = match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => std::fs::remove_dir_all(path),
        Ok(_) => std::fs::remove_file(path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    };
    result.with_context(|| format!("removing {}", path.display()))
}

/// Unpacks `archive` into `<dir>/<tree.root>/`: into a temporary folder beside it first, which
/// must give the manifest's `tree` and only then replaces the folder (the old one, if any, is
/// moved aside and removed). Returns the tree found. On any error, nothing is left but what
/// was there before.
fn extract(archive: &Path, dir: &Path, dataset: &str, tree: &Tree) -> Result<Tree> {
    let pid = std::process::id();
    let tmp = dir.join(format!(".{}.extract-{pid}", tree.root));
    let unpacked = unpack(archive, &tmp, &tree.root).and_then(|()| scan_tree(&tmp, &tree.root));
    let found = match unpacked {
        Ok(found) => found,
        Err(e) => {
            let _ = remove_any(&tmp);
            return Err(e);
        }
    };
    if let Some(difference) = tree_difference(tree, &found) {
        let _ = remove_any(&tmp);
        let counts: Vec<String> = found
            .counts
            .iter()
            .map(|(k, v)| format!("{k:?} = {v}"))
            .collect();
        bail!(
            "{}: unpacks to another tree than [datasets.{dataset}.files.tree] says: {difference}. \
             The archive matched its sha256, so the manifest's tree is wrong; the archive gives \
             files = {}, bytes = {}, sha256 = \"{}\", counts = {{ {} }}",
            archive.display(),
            found.files,
            found.bytes,
            found.sha256,
            counts.join(", ")
        );
    }
    let dest = dir.join(&tree.root);
    let old = dir.join(format!(".{}.old-{pid}", tree.root));
    let had_old = std::fs::symlink_metadata(&dest).is_ok();
    if had_old && let Err(e) = std::fs::rename(&dest, &old) {
        let _ = remove_any(&tmp);
        return Err(e).with_context(|| format!("moving the old {} aside", dest.display()));
    }
    if let Err(e) = std::fs::rename(&tmp, &dest) {
        if had_old {
            let _ = std::fs::rename(&old, &dest);
        }
        let _ = remove_any(&tmp);
        return Err(e).with_context(|| format!("renaming {} to {}", tmp.display(), dest.display()));
    }
    if had_old {
        remove_any(&old)?;
    }
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(found)
}

/// Unpacks the members of `archive` (tar, gzip-framed or not) that lie inside `root/` into
/// the new folder `into`, without the `root/` prefix. Refuses, naming the member, an absolute
/// path or one with `..`, a member outside `root/`, and anything but files and folders.
fn unpack(archive: &Path, into: &Path, root: &str) -> Result<()> {
    std::fs::create_dir(into).with_context(|| format!("creating {}", into.display()))?;
    let mut reader = BufReader::new(
        File::open(archive).with_context(|| format!("opening {}", archive.display()))?,
    );
    let is_gzip = reader.fill_buf()?.starts_with(&[0x1f, 0x8b]);
    let input: Box<dyn Read> = if is_gzip {
        Box::new(flate2::bufread::MultiGzDecoder::new(reader))
    } else {
        Box::new(reader)
    };
    let mut tar = tar::Archive::new(input);
    let reading = || format!("reading {}", archive.display());
    for entry in tar.entries().with_context(reading)? {
        let mut entry = entry.with_context(reading)?;
        let kind = entry.header().entry_type();
        if kind.is_pax_global_extensions() {
            continue; // `git archive` puts the commit there
        }
        let member = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let refuse = |why: &str| {
            anyhow::anyhow!(
                "{}: archive member {member:?} refused: {why}; nothing was unpacked",
                archive.display()
            )
        };
        let mut parts = Vec::new();
        for part in Path::new(&member).components() {
            match part {
                Component::Normal(p) => parts.push(p),
                Component::CurDir => {}
                Component::ParentDir | Component::RootDir | Component::Prefix(_) => {
                    return Err(refuse(
                        "an absolute path or `..` would write outside the cache folder",
                    ));
                }
            }
        }
        if parts
            .first()
            .is_none_or(|top| *top != std::ffi::OsStr::new(root))
        {
            return Err(refuse(&format!(
                "it is not inside {root}/, the folder the manifest's tree names"
            )));
        }
        let target: PathBuf = std::iter::once(into.as_os_str())
            .chain(parts[1..].iter().copied())
            .collect();
        if kind.is_dir() {
            std::fs::create_dir_all(&target)
                .with_context(|| format!("creating {}", target.display()))?;
        } else if kind.is_file() || kind.is_contiguous() || kind.is_gnu_sparse() {
            if parts.len() == 1 {
                return Err(refuse(&format!(
                    "a file where the folder {root}/ should be"
                )));
            }
            let parent = target.parent().expect("below `into`");
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
            let mut out =
                File::create(&target).with_context(|| format!("creating {}", target.display()))?;
            std::io::copy(&mut entry, &mut out)
                .with_context(|| format!("unpacking {member} into {}", target.display()))?;
        } else {
            return Err(refuse(&format!(
                "a {kind:?} entry; only files and folders are unpacked"
            )));
        }
    }
    Ok(())
}

fn progress_bar(name: &str, len: Option<u64>) -> ProgressBar {
    // Small files finish before a bar would be readable; indicatif hides bars off a terminal.
    match len {
        Some(len) if len > (1 << 20) => {
            let bar = ProgressBar::new(len);
            bar.set_style(
                ProgressStyle::with_template(
                    "{msg:32} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}",
                )
                .expect("valid template")
                .progress_chars("=> "),
            );
            bar.set_message(name.to_string());
            bar
        }
        _ => ProgressBar::hidden(),
    }
}

/// Fetches the named datasets (all when `names` is empty) and reports per file.
pub fn fetch(fetcher: &Fetcher, manifest: &Manifest, names: &[String]) -> Result<Vec<Outcome>> {
    let names: Vec<String> = if names.is_empty() {
        manifest.datasets.keys().cloned().collect()
    } else {
        names.to_vec()
    };
    let mut outcomes = Vec::new();
    let mut errors = Vec::new();
    for name in &names {
        let Some(ds) = manifest.datasets.get(name) else {
            let known: Vec<_> = manifest.datasets.keys().map(String::as_str).collect();
            bail!(
                "unknown dataset {name:?}; the manifest has: {}",
                known.join(", ")
            );
        };
        eprintln!("fetch: {name}: {} [{}]", ds.title, ds.license);
        for file in &ds.files {
            match fetcher.fetch_file(name, file) {
                Ok(outcome) => {
                    let what = match &outcome {
                        Outcome::Verified => "verified (cached)".to_string(),
                        Outcome::Fetched(from) => format!("fetched from {from}"),
                        Outcome::Repaired(from) => format!("repaired from {from}"),
                        Outcome::Extracted(_) => "verified (cached), unpacked again".to_string(),
                    };
                    eprintln!("fetch: {name}/{}: {what}", file.name);
                    outcomes.push(outcome);
                }
                Err(e) => errors.push(format!("{e:#}")),
            }
        }
    }
    if !errors.is_empty() {
        bail!("{}", errors.join("\n"));
    }
    Ok(outcomes)
}

/// `cargo xtask fetch`.
pub fn run(args: &Args) -> Result<()> {
    let fetcher = Fetcher::from_env(args.offline);
    let manifest = Manifest::project()?;
    let outcomes = fetch(&fetcher, &manifest, &args.datasets)?;
    let fetched = outcomes.iter().filter(|o| **o != Outcome::Verified).count();
    eprintln!(
        "fetch: {} files verified in {} ({fetched} fetched, repaired or unpacked again)",
        outcomes.len(),
        fetcher.cache.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;
    use flate2::{Compression, write::GzEncoder};

    fn sha(bytes: &[u8]) -> String {
        format!("{:x}", Sha256::digest(bytes))
    }

    fn gz(bytes: &[u8]) -> Vec<u8> {
        let mut enc = GzEncoder::new(Vec::new(), Compression::fast());
        enc.write_all(bytes).unwrap();
        enc.finish().unwrap()
    }

    /// A manifest with one gzip file served by a refused URL, then the mirror.
    fn setup(payload: &[u8]) -> (tempfile::TempDir, Fetcher, Manifest) {
        let dir = tempfile::tempdir().unwrap();
        let mirror = dir.path().join("mirror");
        std::fs::create_dir_all(mirror.join("toy")).unwrap();
        std::fs::write(mirror.join("toy/data.gz"), gz(payload)).unwrap();
        let manifest: Manifest = toml::from_str(&format!(
            r#"
            [datasets.toy]
            title = "toy"
            license = "none"
            [[datasets.toy.files]]
            name = "data"
            sha256 = "{}"
            bytes = {}
            gunzip = true
            sources = [{{ url = "http://127.0.0.1:9/data.gz" }}, {{ mirror = "toy/data.gz" }}]
            "#,
            sha(payload),
            payload.len()
        ))
        .unwrap();
        let fetcher = Fetcher {
            cache: dir.path().join("cache"),
            mirror: Some(mirror),
            network: true,
            connect_timeout: Duration::from_secs(2),
        };
        (dir, fetcher, manifest)
    }

    #[test]
    fn second_fetch_verifies_and_downloads_nothing() {
        let payload: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let (_dir, fetcher, manifest) = setup(&payload);
        let first = fetch(&fetcher, &manifest, &[]).unwrap();
        assert!(matches!(&first[0], Outcome::Fetched(from) if from.contains("mirror")));
        assert_eq!(
            std::fs::read(fetcher.cache.join("toy/data")).unwrap(),
            payload
        );
        let second = fetch(&fetcher, &manifest, &[]).unwrap();
        assert_eq!(second, vec![Outcome::Verified]);
    }

    #[test]
    fn a_folder_in_the_files_place_is_an_error_that_leaves_no_partial_file() {
        let payload = b"payload".repeat(50);
        let (_dir, fetcher, manifest) = setup(&payload);
        let dest = fetcher.cache.join("toy/data");
        std::fs::create_dir_all(dest.join("inside")).unwrap();
        let err = format!("{:#}", fetch(&fetcher, &manifest, &[]).unwrap_err());
        assert!(err.contains("toy/data"), "{err}");
        let names: Vec<String> = std::fs::read_dir(fetcher.cache.join("toy"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["data"], "no partial file beside it");
    }

    #[test]
    fn a_flipped_byte_or_truncation_is_repaired() {
        let payload = b"some dataset payload".repeat(100);
        let (_dir, fetcher, manifest) = setup(&payload);
        fetch(&fetcher, &manifest, &[]).unwrap();
        let cached = fetcher.cache.join("toy/data");
        let mut bytes = std::fs::read(&cached).unwrap();
        bytes[7] ^= 0x40;
        std::fs::write(&cached, &bytes).unwrap();
        let out = fetch(&fetcher, &manifest, &[]).unwrap();
        assert!(matches!(&out[0], Outcome::Repaired(_)), "{out:?}");
        assert_eq!(std::fs::read(&cached).unwrap(), payload);
        std::fs::write(&cached, &payload[..10]).unwrap();
        let out = fetch(&fetcher, &manifest, &[]).unwrap();
        assert!(matches!(&out[0], Outcome::Repaired(_)), "{out:?}");
        assert_eq!(std::fs::read(&cached).unwrap(), payload);
    }

    #[test]
    fn no_network_and_no_mirror_lists_every_source() {
        let (_dir, mut fetcher, manifest) = setup(b"abc");
        fetcher.mirror = None;
        let err = format!("{:#}", fetch(&fetcher, &manifest, &[]).unwrap_err());
        assert!(err.contains("every source failed"), "{err}");
        assert!(err.contains("http://127.0.0.1:9/data.gz"), "{err}");
        assert!(err.contains("no mirror folder"), "{err}");
        assert!(!fetcher.cache.join("toy/data").exists());
    }

    #[test]
    fn a_corrupted_source_is_refused_and_leaves_no_file() {
        let (dir, fetcher, manifest) = setup(b"the real payload");
        std::fs::write(
            dir.path().join("mirror/toy/data.gz"),
            gz(b"the fake payload"),
        )
        .unwrap();
        let err = format!("{:#}", fetch(&fetcher, &manifest, &[]).unwrap_err());
        assert!(err.contains("checksum mismatch"), "{err}");
        let leftovers: Vec<_> = std::fs::read_dir(fetcher.cache.join("toy"))
            .unwrap()
            .collect();
        assert!(
            leftovers.is_empty(),
            "temporary files left behind: {leftovers:?}"
        );
    }

    #[test]
    fn unknown_dataset_names_the_known_ones() {
        let (_dir, fetcher, manifest) = setup(b"abc");
        let err = fetch(&fetcher, &manifest, &["nope".into()])
            .unwrap_err()
            .to_string();
        assert!(err.contains("nope") && err.contains("toy"), "{err}");
    }

    /// A tar.gz of (member, type, contents). Names go into the header as they are: tar's
    /// builder would refuse the `..` and absolute paths the traversal test needs.
    fn tar_gz_of(members: &[(&str, tar::EntryType, &[u8])]) -> Vec<u8> {
        let mut builder = tar::Builder::new(GzEncoder::new(Vec::new(), Compression::fast()));
        for (name, kind, data) in members {
            let mut header = tar::Header::new_gnu();
            header.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
            header.set_entry_type(*kind);
            header.set_size(data.len() as u64);
            header.set_mode(if kind.is_dir() { 0o755 } else { 0o644 });
            if kind.is_symlink() {
                header.set_link_name("target").unwrap();
            }
            header.set_cksum();
            builder.append(&header, *data).unwrap();
        }
        builder.into_inner().unwrap().finish().unwrap()
    }

    /// Regular files, after a pax global header (as `git archive` writes) and the root folder.
    fn tar_gz(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut members = vec![
            (
                "pax_global_header",
                tar::EntryType::XGlobalHeader,
                &b"19 comment=abcdefg\n"[..],
            ),
            ("pics/", tar::EntryType::Directory, &b""[..]),
        ];
        members.extend(files.iter().map(|(n, d)| (*n, tar::EntryType::Regular, *d)));
        tar_gz_of(&members)
    }

    /// The `[datasets.pics.files.tree]` table of `files` (members under `pics/`), computed
    /// here from its definition rather than by the code under test.
    fn tree_table(files: &[(&str, &[u8])]) -> String {
        let mut lines: Vec<(String, usize)> = files
            .iter()
            .map(|(n, d)| (n.strip_prefix("pics/").unwrap().to_string(), d.len()))
            .collect();
        lines.sort();
        let text: String = lines
            .iter()
            .map(|(n, len)| format!("{n}\t{len}\n"))
            .collect();
        let mut counts = BTreeMap::<String, u64>::new();
        for (n, _) in &lines {
            *counts
                .entry(n.rsplit_once('/').unwrap().0.into())
                .or_default() += 1;
        }
        let counts: Vec<String> = counts.iter().map(|(k, v)| format!("{k:?} = {v}")).collect();
        format!(
            "root = \"pics\"\nfiles = {}\nbytes = {}\nsha256 = \"{}\"\ncounts = {{ {} }}\n",
            lines.len(),
            lines.iter().map(|(_, len)| len).sum::<usize>(),
            sha(text.as_bytes()),
            counts.join(", ")
        )
    }

    /// A manifest with one archive to unpack, served by the mirror, and the given tree table
    /// (none if empty); loaded through [`Manifest::load`], so its checks apply.
    fn setup_archive(archive: &[u8], tree: &str) -> Result<(tempfile::TempDir, Fetcher, Manifest)> {
        let dir = tempfile::tempdir().unwrap();
        let mirror = dir.path().join("mirror");
        std::fs::create_dir_all(mirror.join("pics")).unwrap();
        std::fs::write(mirror.join("pics/pics.tar.gz"), archive).unwrap();
        let text = format!(
            r#"
            [datasets.pics]
            title = "pics"
            license = "none"
            [[datasets.pics.files]]
            name = "pics.tar.gz"
            sha256 = "{}"
            bytes = {}
            extract = true
            sources = [{{ mirror = "pics/pics.tar.gz" }}]
            {}
            "#,
            sha(archive),
            archive.len(),
            if tree.is_empty() {
                String::new()
            } else {
                format!("[datasets.pics.files.tree]\n{tree}")
            }
        );
        let path = dir.path().join("manifest.toml");
        std::fs::write(&path, text).unwrap();
        let manifest = Manifest::load(&path)?;
        let fetcher = Fetcher {
            cache: dir.path().join("cache"),
            mirror: Some(mirror),
            network: false,
            connect_timeout: Duration::from_secs(2),
        };
        Ok((dir, fetcher, manifest))
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    const PICS: [(&str, &[u8]); 4] = [
        ("pics/train/cat/0000.jpg", b"cat zero"),
        ("pics/train/cat/0001.jpg", b"cat one!!"),
        ("pics/train/dog/0000.jpg", b"dog"),
        ("pics/test/cat/0000.jpg", b"a test cat"),
    ];

    #[test]
    fn an_archive_is_unpacked_its_tree_recorded_and_a_second_fetch_does_nothing() {
        let (_dir, fetcher, manifest) = setup_archive(&tar_gz(&PICS), &tree_table(&PICS)).unwrap();
        let first = fetch(&fetcher, &manifest, &[]).unwrap();
        assert!(
            matches!(&first[..], [Outcome::Fetched(from)] if from.contains("mirror")),
            "{first:?}"
        );
        let ds = fetcher.cache.join("pics");
        for (name, data) in PICS {
            assert_eq!(std::fs::read(ds.join(name)).unwrap(), data, "{name}");
        }
        assert_eq!(
            names(&ds),
            [".pics.lock", "pics", "pics.tar.gz", "pics.tree.json"],
            "no temporary folder left"
        );
        let record: TreeRecord =
            serde_json::from_slice(&std::fs::read(ds.join("pics.tree.json")).unwrap()).unwrap();
        assert_eq!(record.archive, "pics.tar.gz");
        assert_eq!(
            record.archive_sha256,
            manifest.datasets["pics"].files[0].sha256
        );
        assert_eq!(record.tree.files, 4);
        assert_eq!(record.tree.bytes, 30);
        assert_eq!(
            record.tree.counts,
            BTreeMap::from([
                ("test/cat".into(), 1),
                ("train/cat".into(), 2),
                ("train/dog".into(), 1)
            ])
        );
        assert_eq!(
            Some(&record.tree),
            manifest.datasets["pics"].files[0].tree.as_ref()
        );

        let mtime = |p: &Path| std::fs::metadata(p).unwrap().modified().unwrap();
        let (file, rec) = (ds.join(PICS[0].0), ds.join("pics.tree.json"));
        let before = (mtime(&file), mtime(&rec));
        std::thread::sleep(Duration::from_millis(20));
        let second = fetch(&fetcher, &manifest, &[]).unwrap();
        assert_eq!(second, vec![Outcome::Verified]);
        assert_eq!((mtime(&file), mtime(&rec)), before, "nothing rewritten");
    }

    #[test]
    fn a_deleted_truncated_or_added_file_or_a_lost_record_is_noticed_and_unpacked_again() {
        let (_dir, fetcher, manifest) = setup_archive(&tar_gz(&PICS), &tree_table(&PICS)).unwrap();
        fetch(&fetcher, &manifest, &[]).unwrap();
        let ds = fetcher.cache.join("pics");
        let unpacked_again = |expect: &str| {
            let out = fetch(&fetcher, &manifest, &[]).unwrap();
            match &out[..] {
                [Outcome::Extracted(why)] => assert!(why.contains(expect), "{why}"),
                other => panic!("expected Extracted({expect}), got {other:?}"),
            }
            for (name, data) in PICS {
                assert_eq!(std::fs::read(ds.join(name)).unwrap(), data, "{name}");
            }
            assert_eq!(
                names(&ds),
                [".pics.lock", "pics", "pics.tar.gz", "pics.tree.json"]
            );
        };
        std::fs::remove_file(ds.join(PICS[1].0)).unwrap();
        unpacked_again("train/cat/ has 1 files, expected 2");
        std::fs::write(ds.join(PICS[3].0), b"a").unwrap();
        unpacked_again("21 bytes, expected 30");
        std::fs::write(ds.join("pics/train/dog/extra.jpg"), b"").unwrap();
        unpacked_again("train/dog/ has 2 files, expected 1");
        // Same count and total size, another name: only the tree hash tells.
        std::fs::rename(ds.join(PICS[2].0), ds.join("pics/train/dog/0009.jpg")).unwrap();
        unpacked_again("other names or sizes");
        assert!(!ds.join("pics/train/dog/0009.jpg").exists());
        // An interrupted run: no record, its temporary folder left behind.
        std::fs::remove_file(ds.join("pics.tree.json")).unwrap();
        std::fs::create_dir_all(ds.join(".pics.extract-1/train")).unwrap();
        std::fs::create_dir_all(ds.join(".pics.old-1")).unwrap();
        unpacked_again("no record");
        std::fs::write(ds.join("pics.tree.json"), b"{ not json").unwrap();
        unpacked_again("unreadable record");
        std::fs::remove_dir_all(ds.join("pics")).unwrap();
        unpacked_again("listing");
        assert_eq!(
            fetch(&fetcher, &manifest, &[]).unwrap(),
            vec![Outcome::Verified]
        );
    }

    #[test]
    fn a_member_with_dotdot_an_absolute_path_a_link_or_outside_the_root_is_refused() {
        let scratch = tempfile::tempdir().unwrap();
        let absolute = scratch.path().join("evil.txt").display().to_string();
        let cases: [(&str, tar::EntryType, &str); 5] = [
            ("pics/../../evil.txt", tar::EntryType::Regular, "`..`"),
            ("../evil.txt", tar::EntryType::Regular, "`..`"),
            (&absolute, tar::EntryType::Regular, "absolute"),
            ("pics/train/link", tar::EntryType::Symlink, "Symlink"),
            (
                "other/evil.txt",
                tar::EntryType::Regular,
                "not inside pics/",
            ),
        ];
        let good = tree_table(&PICS[..1]);
        for (member, kind, why) in cases {
            let archive = tar_gz_of(&[
                (PICS[0].0, tar::EntryType::Regular, PICS[0].1),
                (member, kind, b"evil"),
            ]);
            let (dir, fetcher, manifest) = setup_archive(&archive, &good).unwrap();
            let err = format!("{:#}", fetch(&fetcher, &manifest, &[]).unwrap_err());
            assert!(
                err.contains(&format!("{member:?}")) && err.contains("refused"),
                "{err}"
            );
            assert!(err.contains(why), "{err}");
            let ds = fetcher.cache.join("pics");
            assert_eq!(
                names(&ds),
                [".pics.lock", "pics.tar.gz"],
                "{member}: nothing unpacked"
            );
            for evil in [
                scratch.path().join("evil.txt"),
                dir.path().join("evil.txt"),
                fetcher.cache.join("evil.txt"),
            ] {
                assert!(!evil.exists(), "{member} wrote {}", evil.display());
            }
        }
    }

    #[test]
    fn a_tree_the_archive_does_not_give_is_an_error_with_the_values_it_gives() {
        let wrong = tree_table(&PICS).replace("\"train/dog\" = 1", "\"train/dog\" = 2");
        let wrong = wrong.replace("files = 4", "files = 5");
        let (_dir, fetcher, manifest) = setup_archive(&tar_gz(&PICS), &wrong).unwrap();
        let err = format!("{:#}", fetch(&fetcher, &manifest, &[]).unwrap_err());
        assert!(err.contains("the manifest's tree is wrong"), "{err}");
        assert!(err.contains("train/dog/ has 1 files, expected 2"), "{err}");
        assert!(
            err.contains("files = 4") && err.contains("\"train/dog\" = 1"),
            "{err}"
        );
        assert_eq!(
            names(&fetcher.cache.join("pics")),
            [".pics.lock", "pics.tar.gz"]
        );

        let bad_sum = tree_table(&PICS).replace("files = 4", "files = 3");
        let err = setup_archive(&tar_gz(&PICS), &bad_sum)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("add up to 4 files, but tree.files = 3"),
            "{err}"
        );
        let bad_root = tree_table(&PICS).replace("root = \"pics\"", "root = \"../pics\"");
        let err = setup_archive(&tar_gz(&PICS), &bad_root)
            .unwrap_err()
            .to_string();
        assert!(err.contains("one folder name"), "{err}");
        // `extract` without the table after it.
        let err = setup_archive(&tar_gz(&PICS), "")
            .map(|_| ())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("needs a [datasets.pics.files.tree] table"),
            "{err}"
        );
    }

    #[test]
    fn the_project_manifest_is_valid_and_complete() {
        let manifest = Manifest::project().unwrap();
        // Datasets whose exact bytes no public URL serves: the mirror is their only source.
        let mirror_only = ["cifar10"];
        let all = [
            "mnist",
            "fashion-mnist",
            "fsdd",
            "orl-faces",
            "uci-digits",
            "cifar10",
            "pneumoniamnist",
        ];
        for name in manifest.datasets.keys() {
            assert!(all.contains(&name.as_str()), "{name}: add it to this test");
        }
        for name in all {
            let ds = manifest
                .datasets
                .get(name)
                .unwrap_or_else(|| panic!("{name} missing"));
            assert!(!ds.files.is_empty());
            for f in &ds.files {
                assert_eq!(
                    f.sources.iter().any(|s| s.url.is_some()),
                    !mirror_only.contains(&name),
                    "{name}/{}: a URL unless mirror-only",
                    f.name
                );
                assert!(
                    f.sources.iter().any(|s| s.mirror.is_some()),
                    "{name}/{}: no mirror",
                    f.name
                );
            }
        }
        let cifar = &manifest.datasets["cifar10"].files[0];
        let tree = cifar
            .tree
            .as_ref()
            .filter(|_| cifar.extract)
            .expect("cifar10 is unpacked");
        assert_eq!(
            (tree.root.as_str(), tree.files),
            ("cifar-10-images", 60_000)
        );
        assert_eq!(tree.counts.len(), 20);
        for (folder, n) in &tree.counts {
            let expected = if folder.starts_with("train/") {
                5000
            } else {
                1000
            };
            assert_eq!(*n, expected, "{folder}");
        }
    }
}
