//! Fine-tune a zoo model on a small target set, the library way: the MNIST LeNet of the zoo
//! adapted to the UCI 8x8 digits with a few examples per class, by four strategies, after
//! ranking the source with LogME (no training needed for that).
//!
//! ```sh
//! cargo xtask fetch && cargo xtask zoo build mnist-lenet     # once: data and the source
//! cargo run --release -p transfer --example finetune_uci -- 5  # examples per class
//! ```

use anyhow::{Context, Result};
use pretrained_zoo::registry::{Registry, default_zoo_dir};
use transfer::finetune::FineTune;
use transfer::strategy::{SourceModel, Strategy, features, pretrained_with_new_head};
use transfer::target::{self, Target};
use transfer::transferability::log_me;

fn main() -> Result<()> {
    let per_class: usize = match std::env::args().nth(1) {
        Some(n) => n
            .parse()
            .context("the argument is the examples per class")?,
        None => 5,
    };
    let device = core_tensor::device::DeviceSpec::Auto.resolve()?;

    // The source: a registered, checksummed zoo entry (its sha256 is verified on load).
    let registry = Registry::builtin()?;
    let source = SourceModel::from_zoo(&registry, &default_zoo_dir(), "mnist-lenet")
        .context("build it with `cargo xtask zoo build mnist-lenet`")?;
    // The target in the source's input format (8x8 digits placed in MNIST's 28x28 frame).
    let input = target::source_image_input(&registry.entry("mnist-lenet")?.recipe.data)?;
    let data = target::load(
        Target::UciDigits,
        &core_tensor::fixtures::cache_dir(),
        &input,
    )?;
    let (train, val) = target::sample(&data, per_class, per_class.div_ceil(2), 0, device)?;
    let test = data.test.to_device(device);

    // How well the source's features suit the target, before any training.
    let (_vs, net) = pretrained_with_new_head(&source, data.classes as i64, device)?;
    let features = features(&*net, &train.inputs, 128)?;
    println!(
        "LogME of mnist-lenet's features on {} UCI digits: {:.3}",
        train.len(),
        log_me(&features, &train.targets, data.classes)?
    );

    for strategy in [
        Strategy::Scratch,
        Strategy::LinearProbe,
        Strategy::FineTune,
        Strategy::LpFt {
            probe_epochs: 20,
            lr_factor: 0.1,
        },
    ] {
        // The short path with its defaults: Adam 1e-3, at least 300 steps, early stopping on
        // the validation accuracy, a linear probe fitted to convergence.
        let adapted = FineTune::new(&source)
            .strategy(strategy.clone())
            .fit(&train, &val)?;
        println!(
            "{:>12}: test accuracy {:.1}% ({per_class} examples per class)",
            strategy.name(),
            100.0 * adapted.accuracy(&test, 256)?
        );
    }
    Ok(())
}
