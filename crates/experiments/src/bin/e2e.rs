//! `e2e`: the end-to-end vs pipeline experiments P1–P5.
//!
//! ```text
//! e2e p1 [--profile quick|full] [--seeds S] [--out DIR] [--device cpu|cuda|auto]
//! e2e p2 … p5                  # the same options; --config FILE for another config
//! e2e all                      # P1 to P5 in one store
//! e2e p2 --shard 0/4 …         # only a quarter of the runs; no report (see docs/cluster.md)
//! ```
//!
//! Each run (contender, N, seed) is stored in `DIR/runs` as it finishes, so an interrupted
//! experiment resumes; the report goes to `DIR/<id>/` (`summary.json`, `report.md`, a CSV per
//! table). Progress: one line per run on standard error, `[n] <label>: ran|stored (<t> s)`.

use anyhow::Result;
use clap::{Parser, Subcommand};
use experiments::driver::cli::{self, ExpArgs};

#[derive(Parser, Debug)]
#[command(about = "Run the end-to-end vs pipeline experiments P1-P5")]
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
    /// P5: translation end to end, dates to ISO, rules vs a seq2seq network (E-7).
    P5(ExpArgs),
    /// P1 to P5 in one store.
    All(ExpArgs),
}

fn main() -> std::process::ExitCode {
    // `{:#}` shows the whole chain of causes on one line.
    experiments::progress::run_main("warn", || run(Cli::parse()).map_err(|e| format!("{e:#}")))
}

fn run(cli: Cli) -> Result<()> {
    let (id, args) = match cli.command {
        Command::All(a) => ("all", a),
        Command::P1(a) => ("p1", a),
        Command::P2(a) => ("p2", a),
        Command::P3(a) => ("p3", a),
        Command::P4(a) => ("p4", a),
        Command::P5(a) => ("p5", a),
    };
    let configs = experiments::configs("e2e");
    let functions = experiments::registry::functions("e2e")?;
    let table: Vec<(&str, experiments::driver::ExperimentFn)> =
        functions.iter().map(|(id, f)| (id.as_str(), *f)).collect();
    cli::dispatch(id, &args, &table, &configs)
}
