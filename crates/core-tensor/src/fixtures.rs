//! Where the fetched dataset files live.
//!
//! `cargo xtask fetch` downloads and verifies the datasets into a cache folder, by default
//! `<workspace root>/.cache/fixtures` (ignored by git); the environment variable
//! [`CACHE_ENV`] points elsewhere. Layout, one folder per dataset name:
//!
//! ```text
//! <cache>/mnist/{train,t10k}-{images-idx3,labels-idx1}-ubyte     (decompressed IDX)
//! <cache>/fashion-mnist/ (same names as mnist)
//! <cache>/fsdd/free-spoken-digit-dataset.tar.gz
//! <cache>/orl-faces/orl_faces.tar.gz
//! <cache>/uci-digits/digits.csv.gz
//! ```

use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// The environment variable that overrides the cache folder.
pub const CACHE_ENV: &str = "TRANSFERLAB_CACHE";

/// The workspace root, found from this crate's manifest folder at compile time (canonicalised
/// when that folder still exists).
pub fn workspace_root() -> PathBuf {
    let raw = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."));
    raw.canonicalize().unwrap_or_else(|_| raw.to_path_buf())
}

/// The fixture cache: `$TRANSFERLAB_CACHE` if set and not empty, else
/// `<workspace root>/.cache/fixtures`. The folder may not exist yet.
pub fn cache_dir() -> PathBuf {
    match std::env::var_os(CACHE_ENV) {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => workspace_root().join(".cache").join("fixtures"),
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workspace_root_holds_the_workspace_manifest() {
        let root = workspace_root();
        assert!(root.join("Cargo.toml").is_file(), "{}", root.display());
        assert!(root.join("crates/core-tensor").is_dir());
    }

    #[test]
    fn cache_dir_default_or_env() {
        let dir = cache_dir();
        match std::env::var_os(CACHE_ENV) {
            Some(v) if !v.is_empty() => assert_eq!(dir, PathBuf::from(v)),
            _ => assert_eq!(dir, workspace_root().join(".cache/fixtures")),
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
