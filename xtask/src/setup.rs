//! `cargo xtask setup`: make libtorch 2.13.0 available with no manual steps.
//!
//! Order of preference:
//! 1. `LIBTORCH_USE_PYTORCH` set: torch-sys asks that Python's torch; we check it is 2.13.
//! 2. `LIBTORCH` set by you (not the project default from `.cargo/config.toml`): used as is,
//!    after checking its version.
//! 3. Otherwise a project-local virtual environment `.cache/torch-venv` gets the PyPI wheel
//!    `torch==2.13.0` (it carries libtorch for CPU and CUDA), and `.cache/libtorch` is made a
//!    link to its `torch/` folder, which `.cargo/config.toml` names as `LIBTORCH`.
//!
//! Idempotent: a stamp records the requirements installed; a second run checks and returns.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::util::{cache_root, project_root, sha256_reader};

/// The libtorch version tch 0.26 is built for.
pub const TORCH_VERSION: &str = "2.13.0";

/// Options of `cargo xtask setup`.
#[derive(clap::Args, Debug, Default)]
pub struct Args {
    /// Reinstall the project environment even if it looks complete.
    #[arg(long)]
    pub force: bool,
}

/// Where libtorch comes from after setup.
#[derive(Debug)]
pub enum Libtorch {
    /// `LIBTORCH_USE_PYTORCH`: the torch of this Python interpreter.
    UserPython(PathBuf),
    /// `LIBTORCH` set by the user.
    UserDir(PathBuf),
    /// The project environment; the path is the `torch/` folder.
    Project(PathBuf),
}

/// Runs setup and says what it found or did.
pub fn run(args: &Args) -> Result<Libtorch> {
    let lib = ensure(args.force)?;
    match &lib {
        Libtorch::UserPython(py) => eprintln!(
            "libtorch: torch {TORCH_VERSION} of {} (LIBTORCH_USE_PYTORCH)",
            py.display()
        ),
        Libtorch::UserDir(dir) => eprintln!("libtorch: {} (LIBTORCH)", dir.display()),
        Libtorch::Project(dir) => eprintln!("libtorch: {} (project environment)", dir.display()),
    }
    Ok(lib)
}

/// Makes libtorch available; every task that builds or runs libtorch code calls this first.
pub fn ensure(force: bool) -> Result<Libtorch> {
    if std::env::var_os("LIBTORCH_USE_PYTORCH").is_some() {
        let python = user_python();
        let version = python_torch_version(&python).with_context(|| {
            format!(
                "LIBTORCH_USE_PYTORCH is set but {} has no usable torch; install torch=={TORCH_VERSION} \
                 into it, or unset LIBTORCH_USE_PYTORCH to let setup make a project environment",
                python.display()
            )
        })?;
        check_version(&version, &format!("the torch of {}", python.display()))?;
        return Ok(Libtorch::UserPython(python));
    }
    let project_link = project_libtorch_link();
    if let Some(dir) = std::env::var_os("LIBTORCH").map(PathBuf::from)
        && dir != project_link
    {
        let version = libtorch_dir_version(&dir)?;
        check_version(&version, &format!("LIBTORCH={}", dir.display()))?;
        return Ok(Libtorch::UserDir(dir));
    }
    ensure_project_env(force).map(Libtorch::Project)
}

/// `.cache/libtorch`, the link named by `.cargo/config.toml`.
pub fn project_libtorch_link() -> PathBuf {
    cache_root().join("libtorch")
}

/// The project environment's folder.
pub fn venv_dir() -> PathBuf {
    cache_root().join("torch-venv")
}

/// The project environment's Python interpreter (tests use it as the PyTorch reference).
pub fn venv_python() -> PathBuf {
    venv_dir().join("bin").join("python")
}

fn requirements_path() -> PathBuf {
    project_root().join("xtask").join("python-requirements.txt")
}

fn ensure_project_env(force: bool) -> Result<PathBuf> {
    let requirements = requirements_path();
    let wanted_stamp = sha256_reader(
        std::fs::File::open(&requirements)
            .with_context(|| format!("reading {}", requirements.display()))?,
    )?;
    let stamp_path = venv_dir().join(".transferlab-requirements.sha256");
    let link = project_libtorch_link();
    let stamp_ok = std::fs::read_to_string(&stamp_path).is_ok_and(|s| s.trim() == wanted_stamp);
    if !force && stamp_ok && link.join("lib").join("libtorch_cpu.so").exists() {
        let dir = std::fs::canonicalize(&link)?;
        check_version(&libtorch_dir_version(&dir)?, "the project environment")?;
        return Ok(dir);
    }

    let python = user_python();
    check_python(&python)?;
    let venv = venv_dir();
    if force || !venv_python().exists() {
        eprintln!("setup: creating a Python environment in {}", venv.display());
        let out = Command::new(&python)
            .args(["-m", "venv", "--clear"])
            .arg(&venv)
            .output()
            .with_context(|| format!("could not run {}", python.display()))?;
        if !out.status.success() {
            bail!(
                "`{} -m venv` failed:\n{}\nfix: install Python's venv and pip support (Debian: \
                 `apt-get install python3-venv python3-pip`), or bring your own libtorch {TORCH_VERSION} \
                 with LIBTORCH=/path/to/libtorch",
                python.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
    }
    eprintln!(
        "setup: installing {} into the project environment (torch {TORCH_VERSION} with its CUDA \
         libraries, several GB; a few minutes)",
        requirements.display()
    );
    let status = Command::new(venv_python())
        .args([
            "-m",
            "pip",
            "install",
            "--disable-pip-version-check",
            "--progress-bar",
            "off",
            "-r",
        ])
        .arg(&requirements)
        .status()
        .with_context(|| format!("could not run {}", venv_python().display()))?;
    if !status.success() {
        bail!(
            "pip could not install {} ({status}). Fixes: check that PyPI is reachable (proxy \
             settings: HTTPS_PROXY, PIP_INDEX_URL) and that the disk has ~6 GB free; or bring your \
             own libtorch {TORCH_VERSION} with LIBTORCH=/path/to/libtorch (CPU or CUDA build), or \
             LIBTORCH_USE_PYTORCH=1 with a Python that has torch=={TORCH_VERSION}",
            requirements.display()
        );
    }
    let torch_dir = python_torch_dir(&venv_python())?;
    check_version(
        &libtorch_dir_version(&torch_dir)?,
        "the project environment",
    )?;
    replace_symlink(&torch_dir, &link)?;
    crate::util::write_atomic(&stamp_path, format!("{wanted_stamp}\n").as_bytes())?;
    eprintln!("setup: libtorch ready at {}", torch_dir.display());
    Ok(torch_dir)
}

/// The interpreter to use: `TRANSFERLAB_PYTHON`, else `python3`.
fn user_python() -> PathBuf {
    std::env::var_os("TRANSFERLAB_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| "python3".into())
}

fn check_python(python: &Path) -> Result<()> {
    let out = Command::new(python).arg("--version").output();
    match out {
        Ok(out) if out.status.success() => Ok(()),
        Ok(out) => bail!(
            "{} --version failed: {}",
            python.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        ),
        Err(e) => bail!(
            "no Python found ({}: {e}). Setup needs Python 3.10 or newer with pip and venv to \
             install torch=={TORCH_VERSION}. Fix: install it (Debian: `apt-get install python3 \
             python3-venv python3-pip`) or name one with TRANSFERLAB_PYTHON=/path/to/python3; or \
             bring your own libtorch {TORCH_VERSION} with LIBTORCH=/path/to/libtorch",
            python.display()
        ),
    }
}

fn python_torch_version(python: &Path) -> Result<String> {
    python_print(python, "import torch; print(torch.__version__)")
}

fn python_torch_dir(python: &Path) -> Result<PathBuf> {
    python_print(
        python,
        "import os, torch; print(os.path.dirname(torch.__file__))",
    )
    .map(PathBuf::from)
}

fn python_print(python: &Path, code: &str) -> Result<String> {
    let out = Command::new(python)
        .args(["-c", code])
        .output()
        .with_context(|| format!("could not run {}", python.display()))?;
    anyhow::ensure!(
        out.status.success(),
        "{} -c {code:?} failed: {}",
        python.display(),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// The version of a libtorch folder: `build-version` (libtorch zips) or `version.py` (wheels).
pub fn libtorch_dir_version(dir: &Path) -> Result<String> {
    if !dir.join("lib").is_dir() || !dir.join("include").is_dir() {
        bail!(
            "{} is not a libtorch folder (it needs lib/ and include/). Point LIBTORCH at the \
             unpacked libtorch {TORCH_VERSION} (or a torch wheel's torch/ folder), or unset it \
             to let setup install one",
            dir.display()
        );
    }
    if let Ok(v) = std::fs::read_to_string(dir.join("build-version")) {
        return Ok(v.trim().to_string());
    }
    let py = std::fs::read_to_string(dir.join("version.py")).with_context(|| {
        format!(
            "{}: no build-version or version.py to tell its version",
            dir.display()
        )
    })?;
    parse_version_py(&py)
        .with_context(|| format!("{}: no __version__ in version.py", dir.display()))
}

fn parse_version_py(text: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let rest = line
            .trim()
            .strip_prefix("__version__")?
            .trim()
            .strip_prefix('=')?;
        Some(rest.trim().trim_matches(['\'', '"']).to_string())
    })
}

/// Accepts `2.13.0`, `2.13.0+cpu`, `2.13.0+cu130`.
fn check_version(version: &str, what: &str) -> Result<()> {
    let base = version.split('+').next().unwrap_or(version);
    if base != TORCH_VERSION {
        bail!(
            "{what} is libtorch {version}, but tch 0.26 needs {TORCH_VERSION}. Fix: point to a \
             {TORCH_VERSION} build, or unset LIBTORCH/LIBTORCH_USE_PYTORCH to let setup install one"
        );
    }
    Ok(())
}

fn replace_symlink(target: &Path, link: &Path) -> Result<()> {
    if let Some(parent) = link.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let tmp = crate::util::temp_path_for(link);
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(target, &tmp)
        .with_context(|| format!("linking {} to {}", tmp.display(), target.display()))?;
    std::fs::rename(&tmp, link).with_context(|| format!("renaming onto {}", link.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_with_local_suffix_are_accepted() {
        assert!(check_version("2.13.0+cu130", "x").is_ok());
        assert!(check_version("2.13.0", "x").is_ok());
        let err = check_version("2.12.1+cpu", "LIBTORCH=/opt/t")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("2.12.1") && err.contains("LIBTORCH=/opt/t"),
            "{err}"
        );
    }

    #[test]
    fn version_py_is_parsed() {
        let text = "from typing import Optional\n__version__ = '2.13.0+cu130'\ndebug = False\n";
        assert_eq!(parse_version_py(text).as_deref(), Some("2.13.0+cu130"));
        assert_eq!(parse_version_py("debug = False\n"), None);
    }

    #[test]
    fn a_folder_without_libtorch_is_refused_with_a_fix() {
        let dir = tempfile::tempdir().unwrap();
        let err = libtorch_dir_version(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("not a libtorch folder") && err.contains("LIBTORCH"),
            "{err}"
        );
    }

    #[test]
    fn a_missing_python_names_the_fix() {
        let err = check_python(Path::new("/nonexistent/python3"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("no Python found") && err.contains("TRANSFERLAB_PYTHON"),
            "{err}"
        );
    }
}
