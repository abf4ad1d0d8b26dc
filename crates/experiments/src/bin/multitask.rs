//! `multitask`: run the multi-task experiments M1–M6.
//!
//! ```text
//! multitask m1 [--profile quick|full] [--seeds N] [--out DIR] [--device cpu|cuda|auto]
//! multitask m2 … m6 (same options)
//! multitask all [--profile quick|full] [--out DIR]   # M1 to M6 in one store
//! multitask m1 --shard 0/4 …   # only a quarter of the runs; no report (see docs/cluster.md)
//! ```
//!
//! Each experiment stores every run in `DIR/runs` as it finishes (a second invocation loads
//! what is there and trains only what is missing) and writes `DIR/<id>/summary.json`,
//! `report.md` and a CSV per table.

use anyhow::Result;
use clap::{Parser, Subcommand};
use experiments::driver::cli::{self, ExpArgs};

#[derive(Parser, Debug)]
#[command(about = "Run the multi-task experiments M1-M6")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// M1: multi-label scenes, one shared network vs one per task (M-1, M-5).
    M1(ExpArgs),
    /// M2: many small tasks, gain vs the other tasks' data (M-2).
    M2(ExpArgs),
    /// M3: trunk-width sweep, where MTL stops losing (M-3).
    M3(ExpArgs),
    /// M4: missing labels, masked loss vs fully labelled examples only (M-4).
    M4(ExpArgs),
    /// M5: loss balancing of tasks of different type and scale.
    M5(ExpArgs),
    /// M6: a task paired with random-label tasks (M-1 converse).
    M6(ExpArgs),
    /// Every experiment, M1 to M6, in one store (shared runs are trained once).
    All(ExpArgs),
}

fn main() -> std::process::ExitCode {
    // `{:#}` shows the whole chain of causes on one line.
    experiments::progress::run_main("warn", || run(Cli::parse()).map_err(|e| format!("{e:#}")))
}

fn run(cli: Cli) -> Result<()> {
    let (id, args) = match cli.command {
        Command::All(a) => ("all", a),
        Command::M1(a) => ("m1", a),
        Command::M2(a) => ("m2", a),
        Command::M3(a) => ("m3", a),
        Command::M4(a) => ("m4", a),
        Command::M5(a) => ("m5", a),
        Command::M6(a) => ("m6", a),
    };
    let configs = experiments::configs("multitask");
    let functions = experiments::registry::functions("multitask")?;
    let table: Vec<(&str, experiments::driver::ExperimentFn)> =
        functions.iter().map(|(id, f)| (id.as_str(), *f)).collect();
    cli::dispatch(id, &args, &table, &configs)
}
