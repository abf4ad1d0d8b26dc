//! `e2e`: the end-to-end vs pipeline experiments P1–P4.
//!
//! ```text
//! e2e p1 [--profile quick|full] [--seeds S] [--out DIR] [--device cpu|cuda|auto]
//! e2e p2 … p4                  # the same options; --config FILE for another config
//! e2e all                      # P1 to P4 in one store
//! ```
//!
//! Each run (contender, N, seed) is stored in `DIR/runs` as it finishes, so an interrupted
//! experiment resumes; the report goes to `DIR/<id>/` (`summary.json`, `report.md`, a CSV per
//! table). Progress: one line per run on standard error, `[n] <label>: ran|stored (<t> s)`.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand};
use core_tensor::device::DeviceSpec;
use e2e_vs_pipeline::experiment::RunOptions;

#[derive(Parser, Debug)]
#[command(about = "Run the end-to-end vs pipeline experiments P1-P4")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// P1: detect, then identify (E-4): cluttered MNIST digits and ORL faces.
    P1(ExpArgs),
    /// P2: speech, MFCC vs log-mel vs raw waveform (E-2, E-3, E-6).
    P2(ExpArgs),
    /// P3: bone age in two worlds (E-4, E-5, E-6).
    P3(ExpArgs),
    /// P4: lines and parity, decomposition vs end-to-end (E-4).
    P4(ExpArgs),
    /// P1 to P4 in one store.
    All(ExpArgs),
}

/// Options of every experiment.
#[derive(clap::Args, Debug, Clone)]
struct ExpArgs {
    /// The experiment config (default: the crate's experiments/<id>.toml).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Profile: quick or full.
    #[arg(long, default_value = "quick")]
    profile: String,
    /// Seeds (default: the profile's).
    #[arg(long)]
    seeds: Option<u64>,
    /// Output folder: runs/ (the store) and <id>/ (summary.json, report.md, CSV).
    #[arg(long, default_value = "out/suite")]
    out: PathBuf,
    /// cpu, cuda, cuda:N or auto.
    #[arg(long, default_value = "cpu")]
    device: DeviceSpec,
}

type ExpFn = fn(
    &std::path::Path,
    &RunOptions,
    &mut dyn FnMut(&str, bool),
) -> core_tensor::Result<core_tensor::report::ExperimentReport>;

const EXPERIMENTS: [(&str, ExpFn); 4] = [
    ("p1", |c, o, f| e2e_vs_pipeline::p1::run(c, o, f)),
    ("p2", |c, o, f| e2e_vs_pipeline::p2::run(c, o, f)),
    ("p3", |c, o, f| e2e_vs_pipeline::p3::run(c, o, f)),
    ("p4", |c, o, f| e2e_vs_pipeline::p4::run(c, o, f)),
];

fn experiment(id: &str, args: ExpArgs) -> Result<()> {
    let f = EXPERIMENTS
        .iter()
        .find(|(name, _)| *name == id)
        .map(|(_, f)| *f)
        .expect("every subcommand has an experiment");
    let config = args.config.unwrap_or_else(|| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("experiments")
            .join(format!("{id}.toml"))
    });
    let opts = RunOptions {
        profile: args.profile,
        seeds: args.seeds,
        device: args.device,
        store: args.out.join("runs"),
    };
    let start = std::time::Instant::now();
    let mut n = 0;
    let mut on_run = |label: &str, stored: bool| {
        n += 1;
        let how = if stored { "stored" } else { "ran" };
        eprintln!(
            "[{n}] {label}: {how} ({:.0} s)",
            start.elapsed().as_secs_f64()
        );
    };
    let report = f(&config, &opts, &mut on_run)?;
    report.write(&args.out.join(id))?;
    println!("{}", report.markdown());
    Ok(())
}

fn main() -> std::process::ExitCode {
    // `{:#}` shows the whole chain of causes on one line.
    core_tensor::progress::run_main("warn", || run(Cli::parse()).map_err(|e| format!("{e:#}")))
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::All(args) => {
            if args.config.is_some() {
                anyhow::bail!(
                    "--config names one experiment's file; `all` takes each from experiments/"
                );
            }
            for (id, _) in EXPERIMENTS {
                experiment(id, args.clone())?;
            }
        }
        Command::P1(args) => experiment("p1", args)?,
        Command::P2(args) => experiment("p2", args)?,
        Command::P3(args) => experiment("p3", args)?,
        Command::P4(args) => experiment("p4", args)?,
    }
    Ok(())
}
