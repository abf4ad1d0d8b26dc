//! Times `Mnist::load` of the training split from the fixture cache.
//!
//! Run with `cargo run --release -p core-tensor --example load_mnist`.

use std::time::Instant;

use core_tensor::datasets::{Mnist, Split};

fn main() -> anyhow::Result<()> {
    let cache = core_tensor::fixtures::cache_dir();
    let start = Instant::now();
    let train = Mnist::load(&cache, Split::Train)?;
    let elapsed = start.elapsed();
    println!(
        "Mnist::load(Train): {} images {:?} in {:.1} ms",
        train.len(),
        train.images.size(),
        elapsed.as_secs_f64() * 1e3
    );
    Ok(())
}
