//! The smoke experiment: a LeNet-style CNN trained on MNIST, the first real job of the suite.
//!
//! Trains on 55,000 training images, reports validation accuracy on the other 5,000 after each
//! epoch, measures test accuracy once at the end, and writes metrics and timing as JSON.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Parser;
use core_tensor::data::TensorDataset;
use core_tensor::datasets::{Mnist, Split};
use core_tensor::device::DeviceSpec;
use indicatif::{ProgressBar, ProgressStyle};
use pretrained_zoo::arch::lenet::{LeNet, LeNetConfig};
use serde::Serialize;
use tch::nn::{self, ModuleT, OptimizerConfig};
use tch::{Device, Kind, Tensor};

#[derive(Parser, Debug)]
#[command(about = "Train a LeNet-style CNN on MNIST and write its metrics as JSON")]
struct Args {
    /// Output folder; the result goes to <out>/smoke-mnist.json.
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
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(Args::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn normalise(images: &Tensor) -> Tensor {
    (images.to_kind(Kind::Float) / 255.0 - MNIST_MEAN) / MNIST_STD
}

fn accuracy(net: &LeNet, data: &TensorDataset) -> f64 {
    let _guard = tch::no_grad_guard();
    let mut correct = 0i64;
    for (x, y) in data.batches(256) {
        let pred = net.forward_t(&x, false).argmax(-1, false);
        correct += pred.eq_tensor(&y).sum(Kind::Int64).int64_value(&[]);
    }
    correct as f64 / data.len() as f64
}

fn run(args: Args) -> Result<()> {
    let device = args.device.resolve()?;
    if let Some(n) = args.threads {
        core_tensor::device::set_threads(n);
    }
    core_tensor::device::seed(args.seed);
    let cache = core_tensor::fixtures::cache_dir();

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
        .map(Tensor::numel)
        .map(|n| n as i64)
        .sum();
    let mut opt = nn::Adam::default().build(&vs, args.lr)?;
    tracing::info!(
        device = %args.device, threads = tch::get_num_threads(), parameters,
        train = fit.len(), validation = val.len(), test = test.len(), "smoke: LeNet on MNIST"
    );

    let show_bar = std::io::stderr().is_terminal();
    let mut history = Vec::new();
    let train_start = Instant::now();
    for epoch in 1..=args.epochs {
        let epoch_start = Instant::now();
        opt.set_lr(args.lr * 0.5f64.powi(epoch as i32 - 1));
        let batches = fit.shuffled_batches(args.batch_size, args.seed ^ epoch as u64);
        let bar = if show_bar {
            let bar = ProgressBar::new(batches.num_batches() as u64);
            bar.set_style(
                ProgressStyle::with_template("epoch {msg} [{bar:30}] {pos}/{len} {elapsed}<{eta}")?
                    .progress_chars("=> "),
            );
            bar.set_message(format!("{epoch}/{}", args.epochs));
            bar
        } else {
            ProgressBar::hidden()
        };
        let mut loss_sum = Tensor::zeros([], (Kind::Float, device));
        let mut steps = 0i64;
        for (step, (xb, yb)) in batches.enumerate() {
            let loss = net.forward_t(&xb, true).cross_entropy_for_logits(&yb);
            opt.backward_step(&loss);
            loss_sum += loss.detach();
            steps += 1;
            // Checking every step would synchronise a GPU; a NaN persists, so every 100 is enough.
            if step % 100 == 0 {
                let v = loss.double_value(&[]);
                if !v.is_finite() {
                    bail!(
                        "training diverged: loss is {v} at epoch {epoch}, step {step}; lower --lr"
                    );
                }
            }
            bar.inc(1);
        }
        bar.finish_and_clear();
        let train_loss = loss_sum.double_value(&[]) / steps as f64;
        if !train_loss.is_finite() {
            bail!("training diverged: mean loss is {train_loss} in epoch {epoch}; lower --lr");
        }
        let validation_accuracy = accuracy(&net, &val);
        let seconds = epoch_start.elapsed().as_secs_f64();
        tracing::info!(
            epoch,
            train_loss,
            validation_accuracy,
            seconds,
            "epoch done"
        );
        history.push(EpochRecord {
            epoch,
            train_loss,
            validation_accuracy,
            seconds,
        });
    }
    let train_seconds = train_start.elapsed().as_secs_f64();
    let test_accuracy = accuracy(&net, &test);

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
