//! `cargo xtask fetch [DATASET...]`: datasets into the fixture cache, verified by checksum.
//!
//! `fixtures/manifest.toml` lists, for every file, the sha256 and size of the payload the cache
//! must hold and an ordered list of sources: the canonical URLs, other installed copies (a
//! Debian package), and the local mirror folder (`TRANSFERLAB_DATA_MIRROR`, default
//! `../shared/data` beside the project root). Each source is tried in order; a download is
//! written to a temporary file beside its destination, checked, and only then renamed into
//! place. A cached file is re-hashed on every fetch: a corrupted or truncated one is fetched
//! again, a valid one is left alone.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Deserialize;
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
    /// Sources, tried in order.
    pub sources: Vec<Source>,
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

    /// Makes `<cache>/<dataset>/<file.name>` hold the verified payload.
    pub fn fetch_file(&self, dataset: &str, file: &FileEntry) -> Result<Outcome> {
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
        "fetch: {} files verified in {} ({fetched} fetched or repaired)",
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

    #[test]
    fn the_project_manifest_is_valid_and_complete() {
        let manifest = Manifest::project().unwrap();
        for name in ["mnist", "fashion-mnist", "fsdd", "orl-faces", "uci-digits"] {
            let ds = manifest
                .datasets
                .get(name)
                .unwrap_or_else(|| panic!("{name} missing"));
            assert!(!ds.files.is_empty());
            for f in &ds.files {
                assert!(
                    f.sources.iter().any(|s| s.url.is_some()),
                    "{name}/{}: no URL",
                    f.name
                );
                assert!(
                    f.sources.iter().any(|s| s.mirror.is_some()),
                    "{name}/{}: no mirror",
                    f.name
                );
            }
        }
    }
}
