//! `transfer`: fine-tune a zoo model on a dataset, or run a transfer experiment.
//!
//! ```text
//! transfer finetune --data DIR|F.npz|F.csv --model NAME [--strategy S] [--per-class N] [--out DIR]
//! transfer finetune-config --config finetune.toml # one adaptation of a project target
//! transfer x1 [--profile quick] [--out DIR]     # experiment X1, resumable
//! transfer x0, x2 … x6 [--profile quick] [--out DIR] # experiments X0, X2–X6, resumable
//! ```
//!
//! Experiments store each run in `DIR/runs` as it finishes and write `DIR/<id>/summary.json`,
//! `report.md` and a CSV per table.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use core_tensor::device::DeviceSpec;
use experiments::driver::cli::{self, ExpArgs};
use pretrained_zoo::registry::Registry;
use serde::{Deserialize, Serialize};
use transfer::strategy::{AdaptConfig, SourceModel, Strategy, adapt};
use transfer::target::{self, Target};

#[derive(Parser, Debug)]
#[command(about = "Fine-tune zoo models and run the transfer experiments")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Fine-tune a model on your data: `--data DIR|FILE.npz|FILE.csv --model NAME
    /// [--strategy S] [--per-class N] [--out DIR]` writes the adapted weights, result.json,
    /// result.md (accuracy, per class, confusion matrix) and learning_curve.svg.
    Finetune(experiments::finetune::FinetuneArgs),
    /// Adapt a zoo model to one of the project's target datasets as a TOML config says
    /// (configs/transfer/finetune-example.toml); print test accuracy.
    FinetuneConfig {
        /// The config file.
        #[arg(long)]
        config: PathBuf,
        /// cpu, cuda, cuda:N or auto.
        #[arg(long, default_value = "cpu")]
        device: DeviceSpec,
        /// Write the result as JSON here.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Experiment X0: ordinary photographs to chest X-rays (T-1, T-2 on the chapter's example).
    X0(ExpArgs),
    /// Experiment X1: target-size sweep (T-1).
    X1(ExpArgs),
    /// Experiment X2: source-size sweep (T-2).
    X2(ExpArgs),
    /// Experiment X3: layer transfer, Yosinski-style (T-1, T-3).
    X3(ExpArgs),
    /// Experiment X4: source relatedness and negative transfer (T-3).
    X4(ExpArgs),
    /// Experiment X5: audio transfer across speakers (T-1 on sound).
    X5(ExpArgs),
    /// Experiment X6: transferability estimates vs measured accuracy.
    X6(ExpArgs),
    /// Every experiment, X0 to X6, in one store (X6 reuses X2's and X4's runs).
    All(ExpArgs),
}

/// `finetune` config.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FinetuneConfig {
    /// Zoo entry to start from.
    source: String,
    /// Target dataset.
    target: Target,
    /// Training examples per class.
    per_class: usize,
    /// Validation examples per class (early stopping).
    val_per_class: usize,
    /// Seed.
    seed: u64,
    /// Strategy.
    strategy: Strategy,
    /// Settings.
    adapt: AdaptConfig,
}

fn experiment(id: &str, args: &ExpArgs) -> Result<()> {
    let configs = experiments::configs("transfer");
    let functions = experiments::registry::functions("transfer")?;
    let table: Vec<(&str, experiments::driver::ExperimentFn)> =
        functions.iter().map(|(id, f)| (id.as_str(), *f)).collect();
    cli::dispatch(id, args, &table, &configs)
}

fn main() -> std::process::ExitCode {
    // `{:#}` shows the whole chain of causes on one line.
    let cli = Cli::parse();
    // A fine-tune reports its epochs (tracing events); the experiments show progress bars.
    let level = match cli.command {
        Command::Finetune(_) => "info",
        _ => "warn",
    };
    experiments::progress::run_main(level, || run(cli).map_err(|e| format!("{e:#}")))
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::All(args) => experiment("all", &args)?,
        Command::X0(args) => experiment("x0", &args)?,
        Command::X1(args) => experiment("x1", &args)?,
        Command::X2(args) => experiment("x2", &args)?,
        Command::X3(args) => experiment("x3", &args)?,
        Command::X4(args) => experiment("x4", &args)?,
        Command::X5(args) => experiment("x5", &args)?,
        Command::X6(args) => experiment("x6", &args)?,
        Command::Finetune(args) => {
            experiments::finetune::run(&args)?;
        }
        Command::FinetuneConfig {
            config,
            device,
            out,
        } => {
            let text = std::fs::read_to_string(&config)
                .with_context(|| format!("reading {}", config.display()))?;
            let cfg: FinetuneConfig =
                toml::from_str(&text).with_context(|| format!("{}", config.display()))?;
            cfg.strategy
                .validate()
                .with_context(|| format!("{}", config.display()))?;
            let dev = device.resolve()?;
            let registry = Registry::builtin()?;
            let zoo = experiments::paths::zoo_dir();
            let source = SourceModel::from_zoo(&registry, &zoo, &cfg.source)?;
            let input = target::source_image_input(&registry.entry(&cfg.source)?.recipe.data)?;
            let data = target::load(cfg.target, &experiments::paths::cache_dir(), &input)?;
            let (train, val) =
                target::sample(&data, cfg.per_class, cfg.val_per_class, cfg.seed, dev)?;
            let adapted = adapt(
                &cfg.strategy,
                &source,
                data.classes as i64,
                &train,
                &val,
                &cfg.adapt,
                cfg.seed,
            )?;
            let acc = adapted.accuracy(&data.test.to_device(dev), cfg.adapt.eval_batch)?;
            println!(
                "{} -> {} ({} per class, {}): test accuracy {:.2}%",
                cfg.source,
                cfg.target.dataset(),
                cfg.per_class,
                cfg.strategy.name(),
                100.0 * acc
            );
            if let Some(out) = out {
                let json = serde_json::json!({ "config": cfg, "test_accuracy": acc, "reports": adapted.reports });
                core_tensor::persist::write_json(&out, &json)?;
            }
        }
    }
    Ok(())
}
