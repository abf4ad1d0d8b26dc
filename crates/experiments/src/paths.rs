//! Where this repository keeps what its programs read: the experiment binaries and tests pass
//! these folders to the libraries explicitly (the libraries themselves never guess a path).
//!
//! - datasets: `$TRANSFERLAB_CACHE`, else `<workspace>/.cache/fixtures` (filled by
//!   `cargo xtask fetch`);
//! - built zoo weights: `$TRANSFERLAB_ZOO`, else `<workspace>/.cache/zoo` (`cargo xtask zoo
//!   build`);
//! - the dataset manifest: `$TRANSFERLAB_MANIFEST`, else `<workspace>/fixtures/manifest.toml`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use core_tensor::Result;
use core_tensor::fixtures::Manifest;

/// The environment variable that points at another dataset manifest than the project's.
pub const MANIFEST_ENV: &str = "TRANSFERLAB_MANIFEST";

/// The workspace root (this crate lives at `crates/experiments`).
pub fn workspace_root() -> PathBuf {
    let raw = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."));
    raw.canonicalize().unwrap_or_else(|_| raw.to_path_buf())
}

fn env_or(var: &str, default: impl FnOnce() -> PathBuf) -> PathBuf {
    match std::env::var_os(var) {
        Some(v) if !v.is_empty() => PathBuf::from(v),
        _ => default(),
    }
}

/// The dataset cache.
pub fn cache_dir() -> PathBuf {
    env_or(core_tensor::fixtures::CACHE_ENV, || {
        workspace_root().join(".cache").join("fixtures")
    })
}

/// The folder of built zoo weights.
pub fn zoo_dir() -> PathBuf {
    env_or(pretrained_zoo::registry::ZOO_ENV, || {
        workspace_root().join(".cache").join("zoo")
    })
}

/// The project's dataset manifest file.
pub fn manifest_path() -> PathBuf {
    env_or(MANIFEST_ENV, || {
        workspace_root().join("fixtures").join("manifest.toml")
    })
}

/// The run inputs of `datasets` in `cache`, each checked against the project's manifest (read
/// once per process): what an experiment calls before it trains on them, so that no run is
/// made, or reused, on a file that is not the manifest's (see
/// [`core_tensor::fixtures::Manifest::verify`]).
pub fn verified_inputs(cache: &Path, datasets: &[&str]) -> Result<BTreeMap<String, String>> {
    static PROJECT: Mutex<Option<Manifest>> = Mutex::new(None);
    let manifest = {
        let mut m = PROJECT.lock().unwrap_or_else(|p| p.into_inner());
        if m.is_none() {
            *m = Some(Manifest::load(&manifest_path())?);
        }
        m.clone().expect("just set")
    };
    let mut inputs = BTreeMap::new();
    for d in datasets {
        inputs.extend(manifest.verify(cache, d)?);
    }
    Ok(inputs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_project_manifest_lists_every_dataset() {
        let m = Manifest::load(&manifest_path()).unwrap();
        for d in ["mnist", "fashion-mnist", "fsdd", "orl-faces", "uci-digits"] {
            assert!(!m.dataset(d).unwrap().files.is_empty(), "{d}");
        }
        assert!(workspace_root().join("Cargo.toml").is_file());
    }
}
