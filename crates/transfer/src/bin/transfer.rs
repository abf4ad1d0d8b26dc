//! `transfer`: fine-tune a zoo model on a dataset, or run a transfer experiment.
//!
//! ```text
//! transfer finetune --config finetune.toml      # one adaptation, prints test accuracy
//! transfer x1 [--profile quick] [--out DIR]     # experiment X1, resumable
//! ```

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use core_tensor::device::DeviceSpec;
use core_tensor::runs::RunStore;
use pretrained_zoo::registry::Registry;
use serde::{Deserialize, Serialize};
use transfer::strategy::{AdaptConfig, SourceModel, Strategy, adapt};
use transfer::target::{self, Target};
use transfer::x1::{self, X1Config};

#[derive(Parser, Debug)]
#[command(about = "Fine-tune zoo models and run the transfer experiments")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Adapt a zoo model to a target dataset as a TOML config says; print test accuracy.
    Finetune {
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
    /// Experiment X1: target-size sweep.
    X1 {
        /// The experiment config.
        #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/experiments/x1.toml"))]
        config: PathBuf,
        /// Profile: quick or full.
        #[arg(long, default_value = "quick")]
        profile: String,
        /// Seeds (default: the profile's).
        #[arg(long)]
        seeds: Option<u64>,
        /// Output folder: runs/ (the store), x1/summary.json and x1/table.md.
        #[arg(long, default_value = "out/suite")]
        out: PathBuf,
        /// cpu, cuda, cuda:N or auto.
        #[arg(long, default_value = "cpu")]
        device: DeviceSpec,
    },
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

fn main() -> std::process::ExitCode {
    // `{:#}` shows the whole chain of causes on one line.
    core_tensor::progress::run_main("warn", || run(Cli::parse()).map_err(|e| format!("{e:#}")))
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Finetune {
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
            let registry = Registry::project()?;
            let zoo = pretrained_zoo::registry::default_zoo_dir();
            let source = SourceModel::from_zoo(&registry, &zoo, &cfg.source)?;
            let input = target::source_image_input(&registry.entry(&cfg.source)?.recipe.data)?;
            let data = target::load(cfg.target, &core_tensor::fixtures::cache_dir(), &input)?;
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
        Command::X1 {
            config,
            profile,
            seeds,
            out,
            device,
        } => {
            let cfg = X1Config::load(&config)?;
            let store = RunStore::new(out.join("runs"));
            let start = std::time::Instant::now();
            let summary = x1::run(
                &cfg,
                &profile,
                seeds,
                &store,
                device,
                |done, total, label, cached| {
                    let how = if cached { "stored" } else { "ran" };
                    eprintln!(
                        "[{done}/{total}] x1 {label}: {how} ({:.0} s)",
                        start.elapsed().as_secs_f64()
                    );
                },
            )?;
            core_tensor::persist::write_json(&out.join("x1").join("summary.json"), &summary)?;
            let table = x1::markdown(&summary);
            core_tensor::persist::write_atomic(&out.join("x1").join("table.md"), table.as_bytes())?;
            println!("{table}");
        }
    }
    Ok(())
}
