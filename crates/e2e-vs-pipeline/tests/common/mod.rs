//! Shared helpers of the integration tests: the Python reference interpreter and the FSDD
//! fixture.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

/// The reference Python (torch, numpy, librosa): `TRANSFERLAB_PYTHON_REF` if set, else the
/// environment `cargo xtask setup` creates. Missing is an error, never a skipped test.
pub fn python() -> Result<PathBuf> {
    let path = match std::env::var_os("TRANSFERLAB_PYTHON_REF") {
        Some(p) => PathBuf::from(p),
        None => workspace_root().join(".cache/torch-venv/bin/python"),
    };
    if !path.exists() {
        bail!(
            "the reference Python {} does not exist: run `cargo xtask setup` (or set \
             TRANSFERLAB_PYTHON_REF to a Python with numpy and librosa 0.11, as pinned in \
             xtask/python-requirements.txt)",
            path.display()
        );
    }
    Ok(path)
}

/// Runs the Python script `script` (a path relative to this crate's `tests/`) with `args`; a
/// failure carries the script's stderr, which names the fix when librosa is missing.
pub fn run_script(script: &str, args: &[&Path]) -> Result<String> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join(script);
    let python = python()?;
    let output = Command::new(&python)
        .arg(&script)
        .args(args)
        .output()
        .with_context(|| format!("starting {} {}", python.display(), script.display()))?;
    if !output.status.success() {
        bail!(
            "{} exited with {}:\n{}\n(run `cargo xtask setup`, or `{} -m pip install -r \
             xtask/python-requirements.txt`, to install the pinned reference packages)",
            script.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr),
            python.display()
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}
