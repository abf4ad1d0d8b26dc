//! `cargo xtask test`: the README's test command.
//!
//! On a fresh machine it sets libtorch up, fetches every dataset (the loaders' tests read the
//! real files), then runs the whole workspace's tests in the release profile (the tests train
//! small real models; release also shares build artifacts with `cargo xtask suite`).

use anyhow::Result;

use crate::util::{cargo, project_root, run_status};

/// Options of `cargo xtask test`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Extra arguments for `cargo test` (after `--`), e.g. a test name filter.
    #[arg(last = true)]
    pub cargo_args: Vec<String>,
}

/// Runs setup, fetch, and `cargo test --workspace --release`.
pub fn run(args: &Args) -> Result<()> {
    let libtorch = crate::setup::ensure(false)?;
    crate::fetch::run(&crate::fetch::Args::default())?;
    let mut cmd = cargo();
    cmd.current_dir(project_root())
        .args(["test", "--workspace", "--release"])
        .args(&args.cargo_args);
    // Tests compare with PyTorch: with LIBTORCH_USE_PYTORCH that Python is the reference.
    if let crate::setup::Libtorch::UserPython(python) = &libtorch
        && std::env::var_os("TRANSFERLAB_PYTHON_REF").is_none()
    {
        cmd.env("TRANSFERLAB_PYTHON_REF", python);
    }
    run_status(&mut cmd)
}
