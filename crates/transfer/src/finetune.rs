//! The short path: adapt a source network to your data in a few lines, with settings that do
//! the right thing on a small target.
//!
//! [`FineTune`] wraps [`adapt`] with a **step budget**: however small the training set, training
//! runs at least [`FineTune::min_steps`] optimizer steps (default 300; early stopping may not
//! end it sooner), and early stopping then waits at least a quarter of that in steps
//! ([`TrainConfig::with_min_steps`](core_tensor::train::TrainConfig::with_min_steps)). Without
//! it, 10 examples at batch 32 are one step an epoch, and a patience of 5 epochs stops after a
//! handful of steps, keeping a head that still predicts one class. Ties of the validation
//! accuracy (frequent on a few examples) are broken by the validation loss
//! ([`EarlyStopping::break_ties`](core_tensor::train::EarlyStopping::break_ties)), and the
//! linear probe's head is a logistic regression fitted to convergence on the frozen features
//! ([`ProbeFit::lbfgs`](crate::probe::ProbeFit::lbfgs)), which no validation set can cut
//! short. A validation set too small to measure anything (fewer than 20 examples) is worth a
//! `tracing` warning.
//!
//! Measured (the regression test `tests/probe.rs`): the zoo's MNIST LeNet adapted with these
//! defaults to Fashion-MNIST T-shirts vs shirts, mean of 3 seeds on 2,000 test images — 5 per
//! class: logistic regression on the frozen features 76.8 %, linear probe 76.8 %, LP-FT
//! 77.6 %; 20 per class: 74.1 %, 73.7 %, 77.2 %.

use core_tensor::data::TensorDataset;
use core_tensor::{Error, Result};

use crate::strategy::{AdaptConfig, Adapted, SourceModel, Strategy, adapt};

/// The fewest validation examples that measure accuracy to better than 5 points.
pub const SMALL_VALIDATION: usize = 20;

/// A fine-tuning of a source network: strategy, settings, seed and step budget; [`FineTune::fit`]
/// runs it. Defaults: [`Strategy::FineTune`], [`AdaptConfig::default`], seed 0, at least 300
/// steps, at most 1,000 epochs.
#[derive(Debug, Clone)]
pub struct FineTune<'s> {
    source: &'s SourceModel,
    strategy: Strategy,
    config: AdaptConfig,
    seed: u64,
    min_steps: usize,
    max_epochs: usize,
}

impl<'s> FineTune<'s> {
    /// The fewest optimizer steps of a training phase unless [`FineTune::min_steps`] says
    /// otherwise.
    pub const DEFAULT_MIN_STEPS: usize = 300;

    /// Fine-tuning of `source` with the defaults.
    pub fn new(source: &'s SourceModel) -> Self {
        FineTune {
            source,
            strategy: Strategy::FineTune,
            config: AdaptConfig::default(),
            seed: 0,
            min_steps: Self::DEFAULT_MIN_STEPS,
            max_epochs: 1000,
        }
    }

    /// Adapts by `strategy` instead of fine-tuning every layer.
    pub fn strategy(mut self, strategy: Strategy) -> Self {
        self.strategy = strategy;
        self
    }

    /// Other settings (optimizer, learning rate, batch size, early stopping, batch norm).
    pub fn config(mut self, config: AdaptConfig) -> Self {
        self.config = config;
        self
    }

    /// The seed of the new head, fresh layers and batch order.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// At least `steps` optimizer steps (0: the configured epochs only).
    pub fn min_steps(mut self, steps: usize) -> Self {
        self.min_steps = steps;
        self
    }

    /// At most `epochs` epochs, whatever the step budget asks.
    pub fn max_epochs(mut self, epochs: usize) -> Self {
        self.max_epochs = epochs;
        self
    }

    /// Adapts the source to `train` (labels `0..classes`, classes counted from both sets),
    /// early-stopping on `val`; both on the device to train on.
    pub fn fit(&self, train: &TensorDataset, val: &TensorDataset) -> Result<Adapted> {
        if train.is_empty() {
            return Err(Error::InvalidArgument(
                "fine-tune: the training set is empty".into(),
            ));
        }
        if val.is_empty() {
            return Err(Error::InvalidArgument(
                "fine-tune: the validation set is empty (early stopping needs one)".into(),
            ));
        }
        if val.len() < SMALL_VALIDATION {
            tracing::warn!(
                examples = val.len(),
                "a validation set of {} examples measures accuracy in steps of {:.0} points: \
                 early stopping on it is mostly noise",
                val.len(),
                100.0 / val.len() as f64
            );
        }
        let classes = classes_of(train)?.max(classes_of(val)?);
        let mut cfg = self.config.clone();
        cfg.train = cfg
            .train
            .with_min_steps(train.len(), self.min_steps, self.max_epochs);
        adapt(
            &self.strategy,
            self.source,
            classes,
            train,
            val,
            &cfg,
            self.seed,
        )
    }
}

/// One more than the largest label of `data` (labels must be class indices `>= 0`).
fn classes_of(data: &TensorDataset) -> Result<i64> {
    let min = data.targets.min().int64_value(&[]);
    if min < 0 {
        return Err(Error::InvalidArgument(format!(
            "fine-tune: labels must be class indices 0, 1, …; found {min}"
        )));
    }
    Ok(data.targets.max().int64_value(&[]) + 1)
}

#[cfg(test)]
mod tests {
    use pretrained_zoo::arch::{ArchConfig, MlpConfig};
    use tch::{Device, Kind, Tensor, nn::VarStore};

    use super::*;

    #[test]
    fn a_tiny_target_trains_its_minimum_steps_whatever_the_validation_says() {
        tch::manual_seed(3);
        let arch = ArchConfig::Mlp(MlpConfig {
            inputs: 4,
            hidden: vec![8],
            classes: 3,
        });
        let vs = VarStore::new(Device::Cpu);
        arch.build(&vs.root()).unwrap();
        let source = SourceModel::from_store("s", arch, &vs);
        // Random labels: validation accuracy does not improve, so patience alone would stop
        // after a handful of one-step epochs.
        let x = Tensor::randn([14, 4], (Kind::Float, Device::Cpu));
        let y = Tensor::randint(2, [14], (Kind::Int64, Device::Cpu));
        let train = TensorDataset::new(x.narrow(0, 0, 10), y.narrow(0, 0, 10)).unwrap();
        let val = TensorDataset::new(x.narrow(0, 10, 4), y.narrow(0, 10, 4)).unwrap();
        let adapted = FineTune::new(&source)
            .min_steps(120)
            .fit(&train, &val)
            .unwrap();
        let steps: usize = adapted.reports.iter().map(|r| r.epochs.len()).sum();
        assert!(steps >= 120, "stopped after {steps} steps (one per epoch)");
        assert_eq!(adapted.net.classes(), 2);
        // With no budget the same call stops early.
        let short = FineTune::new(&source)
            .min_steps(0)
            .fit(&train, &val)
            .unwrap();
        let steps: usize = short.reports.iter().map(|r| r.epochs.len()).sum();
        assert!(steps < 120, "{steps}");
    }
}
