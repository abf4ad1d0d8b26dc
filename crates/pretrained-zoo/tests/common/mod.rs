//! Shared helpers of the integration tests: the Python reference interpreter and the
//! `python/interop.py` script.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result, bail};

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

/// The reference Python (torch, safetensors): `TRANSFERLAB_PYTHON_REF` if set, else the
/// environment `cargo xtask setup` creates. Missing is an error, never a skipped test.
pub fn python() -> Result<PathBuf> {
    let path = match std::env::var_os("TRANSFERLAB_PYTHON_REF") {
        Some(p) => PathBuf::from(p),
        None => workspace_root().join(".cache/torch-venv/bin/python"),
    };
    if !path.exists() {
        bail!(
            "the reference Python {} does not exist: run `cargo xtask setup` (or set \
             TRANSFERLAB_PYTHON_REF to a Python with torch 2.13, safetensors and numpy)",
            path.display()
        );
    }
    Ok(path)
}

/// Runs `python/interop.py ARGS...`; a failure carries the script's stderr.
#[allow(dead_code)] // not every test binary that includes this module calls it
pub fn interop<I, S>(args: I) -> Result<()>
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    script("interop.py", args)
}

/// Runs `python/NAME ARGS...` with the reference Python; a failure carries its stderr.
pub fn script<I, S>(name: &str, args: I) -> Result<()>
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let script = workspace_root().join("python").join(name);
    let args: Vec<_> = args.into_iter().map(|a| a.as_ref().to_owned()).collect();
    let output = Command::new(python()?)
        .arg(&script)
        .args(&args)
        .output()
        .with_context(|| format!("starting {}", script.display()))?;
    if !output.status.success() {
        bail!(
            "{name} {:?} exited with {}:\n{}",
            args,
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}
