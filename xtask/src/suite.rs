//! `cargo xtask suite`: the project's main job.
//!
//! Until the experiment crates land it runs the smoke experiment: a LeNet-style CNN trained on
//! MNIST on the CPU, whose accuracy and timing are written as JSON under the output folder.

use std::path::PathBuf;

use anyhow::Result;

use crate::util::{cargo, project_root, run_status};

/// Options of `cargo xtask suite`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Output folder (default: out/suite in the project root).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Device: cpu, cuda, cuda:N or auto.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Seed of the smoke run.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// Sets up, fetches MNIST, and runs the smoke experiment.
pub fn run(args: &Args) -> Result<()> {
    crate::setup::ensure(false)?;
    crate::fetch::run(&crate::fetch::Args {
        datasets: vec!["mnist".into()],
        offline: false,
    })?;
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| project_root().join("out").join("suite"));
    run_status(
        cargo()
            .current_dir(project_root())
            .args([
                "run",
                "--quiet",
                "--release",
                "--package",
                "pretrained-zoo",
                "--bin",
                "smoke",
                "--",
            ])
            .arg("--out")
            .arg(&out)
            .args(["--device", &args.device, "--seed", &args.seed.to_string()]),
    )
}
