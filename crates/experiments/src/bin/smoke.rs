//! The smoke experiment: a LeNet-style CNN trained on MNIST, the first real job of the suite.
//!
//! Trains on 55,000 training images, reports validation accuracy on the other 5,000 after each
//! epoch, measures test accuracy once at the end, and writes metrics and timing as JSON.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Parser;
use core_tensor::data::TensorDataset;
use core_tensor::datasets::{Mnist, Split};
use core_tensor::device::DeviceSpec;
use core_tensor::optim::OptimizerKind;
use core_tensor::schedule::{Decay, Schedule};
use core_tensor::train::{self, TrainConfig, Trainer};
use pretrained_zoo::arch::lenet::{LeNet, LeNetConfig};
use serde::Serialize;
use tch::nn::{self, ModuleT};
use tch::{Device, Kind, Tensor};

#[derive(Parser, Debug)]
#[command(about = "Train a LeNet-style CNN on MNIST and write its metrics as JSON")]
struct Args {
    /// Output folder; the result goes to `OUT/smoke-mnist.json`.
    #[arg(long, default_value = "out/suite")]
    out: PathBuf,
    /// cpu, cuda, cuda:N or auto.
    #[arg(long, default_value = "cpu")]
    device: DeviceSpec,
    /// Seed for initialisation and shuffling.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Passes over the training data.
    #[arg(long, default_value_t = 4)]
    epochs: usize,
    /// Examples per step.
    #[arg(long, default_value_t = 64)]
    batch_size: usize,
    /// Adam learning rate of the first epoch; it halves after every epoch.
    #[arg(long, default_value_t = 1e-3)]
    lr: f64,
    /// libtorch intra-op threads (default: libtorch's choice).
    #[arg(long)]
    threads: Option<usize>,
}

#[derive(Serialize)]
struct EpochRecord {
    epoch: usize,
    train_loss: f64,
    validation_accuracy: f64,
    seconds: f64,
}

#[derive(Serialize)]
struct SmokeResult {
    experiment: &'static str,
    dataset: &'static str,
    model: &'static str,
    model_config: LeNetConfig,
    parameters: i64,
    seed: u64,
    device: String,
    threads: i32,
    epochs: usize,
    batch_size: usize,
    optimizer: String,
    train_examples: usize,
    validation_examples: usize,
    test_examples: usize,
    history: Vec<EpochRecord>,
    load_seconds: f64,
    train_seconds: f64,
    test_accuracy: f64,
}

const MNIST_MEAN: f64 = 0.1307;
const MNIST_STD: f64 = 0.3081;
const VALIDATION: i64 = 5_000;

fn main() -> std::process::ExitCode {
    // `{:#}` shows the whole chain of causes on one line.
    experiments::progress::run_main("info", || run(Args::parse()).map_err(|e| format!("{e:#}")))
}

fn normalise(images: &Tensor) -> Tensor {
    (images.to_kind(Kind::Float) / 255.0 - MNIST_MEAN) / MNIST_STD
}

fn run(args: Args) -> Result<()> {
    let device = args.device.resolve()?;
    if let Some(n) = args.threads {
        core_tensor::device::set_threads(n);
    }
    core_tensor::device::seed(args.seed);
    let cache = experiments::paths::cache_dir();

    let t0 = Instant::now();
    let train = Mnist::load(&cache, Split::Train).context("loading MNIST train")?;
    let test = Mnist::load(&cache, Split::Test).context("loading MNIST test")?;
    let load_seconds = t0.elapsed().as_secs_f64();
    let n = train.len() as i64;
    let x = normalise(&train.images);
    let fit = TensorDataset::new(
        x.narrow(0, 0, n - VALIDATION),
        train.labels.narrow(0, 0, n - VALIDATION),
    )?
    .to_device(device);
    let val = TensorDataset::new(
        x.narrow(0, n - VALIDATION, VALIDATION),
        train.labels.narrow(0, n - VALIDATION, VALIDATION),
    )?
    .to_device(device);
    let test =
        TensorDataset::new(normalise(&test.images), test.labels.shallow_clone())?.to_device(device);

    let cfg = LeNetConfig {
        channels: [16, 32],
        hidden: [120, 84],
        classes: 10,
    };
    let vs = nn::VarStore::new(device);
    let net = LeNet::new(&vs.root(), &cfg);
    let parameters: i64 = vs
        .trainable_variables()
        .iter()
        .map(|t| t.numel() as i64)
        .sum();
    let steps_per_epoch = fit.len().div_ceil(args.batch_size) as u64;
    let train_cfg = TrainConfig {
        epochs: args.epochs,
        batch_size: args.batch_size,
        optimizer: OptimizerKind::adam(),
        lr: args.lr,
        weight_decay: 0.0,
        // Halve the learning rate after every epoch.
        schedule: Schedule {
            decay: Decay::Step {
                every: steps_per_epoch,
                gamma: 0.5,
            },
            warmup_steps: 0,
        },
        grad_clip_norm: None,
        early_stopping: None,
    };
    tracing::info!(
        device = %args.device, threads = tch::get_num_threads(), parameters,
        train = fit.len(), validation = val.len(), test = test.len(), "smoke: LeNet on MNIST"
    );
    let mut trainer = Trainer::new(&vs, train_cfg)?.shuffle_seed(args.seed);
    if let Some(bar) = experiments::progress::epoch_bar("smoke") {
        trainer = trainer.on_progress(bar);
    }
    let mut validate = || train::accuracy(&net, &val, 256);
    let report = trainer.fit(
        &fit,
        |x, y| net.forward_t(x, true).cross_entropy_for_logits(y),
        Some(&mut validate),
    )?;
    let test_accuracy = train::accuracy(&net, &test, 256)?;
    let history = report
        .epochs
        .iter()
        .map(|e| EpochRecord {
            epoch: e.epoch,
            train_loss: e.train_loss,
            validation_accuracy: e.validation.unwrap_or(f64::NAN),
            seconds: e.seconds,
        })
        .collect();
    let train_seconds = report.seconds;

    let result = SmokeResult {
        experiment: "smoke-mnist",
        dataset: "mnist",
        model: "lenet",
        model_config: cfg,
        parameters,
        seed: args.seed,
        device: format!("{device:?}"),
        threads: if device == Device::Cpu {
            tch::get_num_threads()
        } else {
            0
        },
        epochs: args.epochs,
        batch_size: args.batch_size,
        optimizer: format!("adam(lr={}, halved every epoch)", args.lr),
        train_examples: fit.len(),
        validation_examples: val.len(),
        test_examples: test.len(),
        history,
        load_seconds,
        train_seconds,
        test_accuracy,
    };
    let path = args.out.join("smoke-mnist.json");
    core_tensor::persist::write_json(&path, &result)?;
    eprintln!(
        "smoke: MNIST test accuracy {:.2}% after {} epochs, training took {:.1} s; wrote {}",
        100.0 * test_accuracy,
        args.epochs,
        train_seconds,
        path.display()
    );
    Ok(())
}
