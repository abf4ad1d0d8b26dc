//! Training-step benchmark, Rust side: the twin of `python/bench_train.py`.
//!
//! For each model (MLP 784-256-10, the LeNet-style CNN), batch size (64, 1024) and optimizer
//! (SGD with momentum 0.9, Adam) selected by `--only` (all by default) it trains on real MNIST
//! on the CPU, `warmup` steps untimed and then `steps` timed ones, and reports milliseconds per
//! step; then it times full passes of shuffled batches of 64 over the training set (the data
//! path alone).
//! A step is: next batch (one `index_select`), `zero_grad`, forward, cross-entropy, backward,
//! optimizer step. The loss is read once, after the timed steps, never inside the loop.
//!
//! glibc's malloc is tuned first (`core_tensor::alloc::tune_malloc`, off with
//! `--no-tune-malloc`). `cargo xtask bench` runs each row in a fresh process of this binary and
//! of the Python script, alternating, and prints the comparison; see `docs/benchmarks.md`. The
//! result is one JSON object on stdout.

use std::time::Instant;

use anyhow::{Context, Result};
use clap::Parser;
use core_tensor::data::TensorDataset;
use core_tensor::datasets::{Mnist, Split};
use core_tensor::optim::{Optimizer, OptimizerKind};
use pretrained_zoo::arch::layers;
use pretrained_zoo::arch::lenet::{LeNet, LeNetConfig};
use serde::Serialize;
use tch::nn::{self, ModuleT};
use tch::{Device, Kind, Reduction, Tensor};

#[derive(Parser, Debug)]
#[command(about = "Time training steps of small models on MNIST (one round; JSON on stdout)")]
struct Args {
    /// libtorch intra-op threads.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Untimed steps before the timed ones.
    #[arg(long, default_value_t = 20)]
    warmup: usize,
    /// Timed steps.
    #[arg(long, default_value_t = 200)]
    steps: usize,
    /// Untimed steps for LeNet at batch 1024 (its steps are long).
    #[arg(long, default_value_t = 5)]
    large_warmup: usize,
    /// Timed steps for LeNet at batch 1024.
    #[arg(long, default_value_t = 50)]
    large_steps: usize,
    /// Timed passes over the training set for the data-path row.
    #[arg(long, default_value_t = 5)]
    epochs: usize,
    /// Leave glibc's malloc thresholds at their defaults (to measure what tuning them buys).
    #[arg(long)]
    no_tune_malloc: bool,
    /// Only the rows whose name (`model/batch/optimizer`, or `data/64`) starts with this
    /// (e.g. `lenet`, `mlp/64`, `lenet/1024/adam`, `data`).
    #[arg(long)]
    only: Option<String>,
    /// Seed of initialisation and shuffling.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

/// One timed training configuration.
#[derive(Serialize)]
struct Row {
    model: &'static str,
    batch: usize,
    optimizer: &'static str,
    warmup: usize,
    steps: usize,
    ms_per_step: f64,
    /// Minor page faults per timed step (Linux; absent elsewhere).
    faults_per_step: Option<f64>,
    final_loss: f64,
}

/// The data path alone: full passes of shuffled batches.
#[derive(Serialize)]
struct DataRow {
    batch: usize,
    batches_per_epoch: usize,
    epochs: usize,
    /// Median over the timed passes.
    ms_per_epoch: f64,
}

#[derive(Serialize)]
struct Report {
    side: &'static str,
    threads: i32,
    malloc_tuned: bool,
    optimizer_impl: &'static str,
    rows: Vec<Row>,
    data: Option<DataRow>,
    /// CPU seconds (user + system, all threads) of this process so far, on Linux.
    cpu_seconds: Option<f64>,
}

const MNIST_MEAN: f64 = 0.1307;
const MNIST_STD: f64 = 0.3081;

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    // First, before libtorch starts its threads and allocates (see core_tensor::alloc).
    let malloc_tuned = !args.no_tune_malloc && core_tensor::alloc::tune_malloc();
    match run(args, malloc_tuned) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// `torch.nn.Sequential(Flatten(), Linear(784, 256), ReLU(), Linear(256, 10))`.
#[derive(Debug)]
struct Mlp {
    fc1: nn::Linear,
    head: nn::Linear,
}

impl Mlp {
    fn new(p: &nn::Path) -> Self {
        Mlp {
            fc1: layers::linear(p / "fc1", 784, 256),
            head: layers::linear(p / "head", 256, 10),
        }
    }
}

impl ModuleT for Mlp {
    fn forward_t(&self, xs: &Tensor, _train: bool) -> Tensor {
        xs.flatten(1, -1).apply(&self.fc1).relu().apply(&self.head)
    }
}

fn run(args: Args, malloc_tuned: bool) -> Result<()> {
    core_tensor::device::set_threads(args.threads);
    core_tensor::device::seed(args.seed);
    let train = Mnist::load(&experiments::paths::cache_dir(), Split::Train)
        .context("loading MNIST train (run `cargo xtask fetch mnist`)")?;
    let images = (train.images.to_kind(Kind::Float) / 255.0 - MNIST_MEAN) / MNIST_STD;
    let data = TensorDataset::new(images, train.labels)?;
    let wanted = |name: &str| args.only.as_deref().is_none_or(|o| name.starts_with(o));

    let mut rows = Vec::new();
    for model in ["mlp", "lenet"] {
        for batch in [64, 1024] {
            for optimizer in ["sgd", "adam"] {
                if !wanted(&format!("{model}/{batch}/{optimizer}")) {
                    continue;
                }
                let (warmup, steps) = if model == "lenet" && batch == 1024 {
                    (args.large_warmup, args.large_steps)
                } else {
                    (args.warmup, args.steps)
                };
                rows.push(time_training(
                    &data, model, batch, optimizer, warmup, steps, args.seed,
                )?);
            }
        }
    }
    let data_row = wanted("data/64").then(|| time_data_path(&data, 64, args.epochs, args.seed));

    let report = Report {
        side: "rust",
        threads: tch::get_num_threads(),
        malloc_tuned,
        optimizer_impl: "fused (core_tensor::optim: _fused_sgd_ / _fused_adam_)",
        rows,
        data: data_row,
        cpu_seconds: cpu_seconds(),
    };
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}

/// Trains a fresh model for `warmup + steps` steps and returns the time per timed step.
fn time_training(
    data: &TensorDataset,
    model: &'static str,
    batch: usize,
    optimizer: &'static str,
    warmup: usize,
    steps: usize,
    seed: u64,
) -> Result<Row> {
    let vs = nn::VarStore::new(Device::Cpu);
    let net: Box<dyn ModuleT> = match model {
        "mlp" => Box::new(Mlp::new(&vs.root())),
        _ => Box::new(LeNet::new(&vs.root(), &LeNetConfig::default())),
    };
    let (kind, lr) = match optimizer {
        "sgd" => (OptimizerKind::sgd(0.9), 0.01),
        _ => (OptimizerKind::adam(), 1e-3),
    };
    let mut opt = Optimizer::new(&vs, kind, lr, 0.0)?;

    let mut epoch = 0;
    let mut batches = data.shuffled_batches(batch, seed);
    let mut loss = Tensor::zeros([], (Kind::Float, Device::Cpu));
    let mut start = Instant::now();
    let mut faults = None;
    for step in 0..warmup + steps {
        if step == warmup {
            faults = minor_faults();
            start = Instant::now();
        }
        // Whole batches only, so every step has the same shape; a new epoch reshuffles.
        let (x, y) = match batches.next() {
            Some((x, y)) if x.size()[0] == batch as i64 => (x, y),
            _ => {
                epoch += 1;
                batches = data.shuffled_batches(batch, seed + epoch);
                batches.next().context("empty dataset")?
            }
        };
        opt.zero_grad()?;
        loss = net.forward_t(&x, true).cross_entropy_loss::<Tensor>(
            &y,
            None,
            Reduction::Mean,
            -100,
            0.0,
        );
        loss.backward();
        opt.step()?;
    }
    let final_loss = loss.double_value(&[]);
    let elapsed = start.elapsed().as_secs_f64();
    let faults_per_step = faults
        .zip(minor_faults())
        .map(|(a, b)| (b - a) as f64 / steps.max(1) as f64);
    Ok(Row {
        model,
        batch,
        optimizer,
        warmup,
        steps,
        ms_per_step: 1e3 * elapsed / steps.max(1) as f64,
        faults_per_step,
        final_loss,
    })
}

/// Median time of a full pass of shuffled batches (after one untimed pass).
fn time_data_path(data: &TensorDataset, batch: usize, epochs: usize, seed: u64) -> DataRow {
    let mut times = Vec::with_capacity(epochs);
    let mut batches_per_epoch = 0;
    for e in 0..=epochs {
        let start = Instant::now();
        let mut n = 0;
        for (x, y) in data.shuffled_batches(batch, seed + e as u64) {
            std::hint::black_box((&x, &y));
            n += 1;
        }
        if e > 0 {
            times.push(1e3 * start.elapsed().as_secs_f64());
        }
        batches_per_epoch = n;
    }
    DataRow {
        batch,
        batches_per_epoch,
        epochs,
        ms_per_epoch: median(&mut times),
    }
}

/// Field `n` (1-based, as in `man proc`) of `/proc/self/stat`, for n >= 3, on Linux.
fn proc_stat_field(n: usize) -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name (field 2) may hold spaces; the fields after it are plain.
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.split_whitespace().nth(n - 3)?.parse().ok()
}

/// Minor page faults of this process so far.
fn minor_faults() -> Option<u64> {
    proc_stat_field(10)
}

/// User + system CPU time of this process so far (fields 14 and 15, in USER_HZ = 100 ticks/s).
fn cpu_seconds() -> Option<f64> {
    Some((proc_stat_field(14)? + proc_stat_field(15)?) as f64 / 100.0)
}

fn median(xs: &mut [f64]) -> f64 {
    if xs.is_empty() {
        return f64::NAN;
    }
    xs.sort_by(f64::total_cmp);
    let m = xs.len() / 2;
    if xs.len() % 2 == 1 {
        xs[m]
    } else {
        (xs[m - 1] + xs[m]) / 2.0
    }
}
