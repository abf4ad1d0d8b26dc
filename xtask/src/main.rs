//! `cargo xtask`: the project's automation, one file per task.
//!
//! xtask never links libtorch: it prepares libtorch (`setup`), fetches and verifies datasets
//! (`fetch`), and drives `cargo` to build and run the crates that do.

mod bench;
#[cfg(test)]
mod browser_test;
mod fetch;
mod forest;
mod merge;
mod report;
mod setup;
mod suite;
mod test;
mod util;
mod zoo;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "Project automation for transferlab")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Make libtorch 2.13.0 available (your own, or a project-local PyPI torch wheel).
    Setup(setup::Args),
    /// Fetch datasets into the fixture cache, verifying their checksums.
    Fetch(fetch::Args),
    /// Set up, fetch every dataset, then run the workspace's tests.
    Test(test::Args),
    /// Set up, fetch, build the zoo, run every experiment and write the report.
    Suite(suite::Args),
    /// Combine the run stores of several suite outputs (shards) into one.
    Merge(merge::Args),
    /// Time training steps in Rust against PyTorch eager (docs/benchmarks.md).
    Bench(bench::Args),
    /// Build, list or verify the pre-trained models of crates/pretrained-zoo/zoo.toml.
    Zoo(zoo::Args),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Setup(args) => setup::run(&args).map(|_| ()),
        Command::Fetch(args) => fetch::run(&args),
        Command::Test(args) => test::run(&args),
        Command::Suite(args) => suite::run(&args),
        Command::Merge(args) => merge::run(&args),
        Command::Bench(args) => bench::run(&args),
        Command::Zoo(args) => zoo::run(&args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
