//! What the experiments X2–X6 share: the common settings file, config loading, the run
//! options and the bookkeeping of results per seed.
//!
//! Every experiment config (`experiments/x2.toml`…) names a common settings file
//! (`common = "common.toml"`, relative to the config) holding the pre-training recipe of the
//! image sources and the adaptation settings, so that runs which are the same run in two
//! experiments (the MNIST source of X2 and X4, every fine-tuning of X6) have the same key and
//! are trained once.

use std::path::Path;

use core_tensor::Result;

use serde::{Deserialize, Serialize};

use crate::xfer::runner::{AdaptRun, Context, DataSpec, PretrainRecipe, SourceSpec, resolve_adapt};
use transfer::strategy::{AdaptConfig, Strategy};
use transfer::target;

/// Settings shared by the image experiments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Common {
    /// How image sources are pre-trained.
    pub recipe: PretrainRecipe,
    /// How sources are adapted to targets.
    pub adapt: Adaptation,
}

/// Adaptation settings with the step budget that resolves epochs per N.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Adaptation {
    /// Training settings; `epochs` is the least number of epochs.
    pub train: core_tensor::train::TrainConfig,
    /// Batch norm in frozen stages.
    pub batch_norm: pretrained_zoo::arch::BatchNormPolicy,
    /// Batch size of evaluation and feature extraction.
    pub eval_batch: usize,
    /// Each adaptation trains at least this many steps…
    pub min_steps: usize,
    /// … within this many epochs.
    pub max_epochs: usize,
}

impl Adaptation {
    /// The settings as the strategies take them.
    pub fn settings(&self) -> AdaptConfig {
        AdaptConfig {
            train: self.train.clone(),
            batch_norm: self.batch_norm,
            eval_batch: self.eval_batch,
            // The experiments train their probes (their stored runs did).
            probe: transfer::probe::ProbeFit::Train,
        }
    }

    /// One adaptation run of `source` to `target` with `per_class` examples per class.
    pub fn run(
        &self,
        source: SourceSpec,
        source_seed: u64,
        target: DataSpec,
        classes: usize,
        per_class: usize,
        strategy: Strategy,
    ) -> AdaptRun {
        AdaptRun {
            source,
            source_seed,
            target,
            per_class,
            val_per_class: target::validation_per_class(per_class),
            strategy,
            adapt: resolve_adapt(
                &self.settings(),
                per_class,
                classes,
                self.min_steps,
                self.max_epochs,
            ),
        }
    }
}

pub use crate::driver::{RunOptions, load_toml, profile};

/// Reads the common settings named by an experiment config at `config_path`.
pub fn load_common(config_path: &Path, common: &Path) -> Result<Common> {
    let path = config_path
        .parent()
        .map(|d| d.join(common))
        .unwrap_or_else(|| common.to_path_buf());
    let c: Common = load_toml(&path)?;
    c.adapt
        .train
        .validate()
        .and_then(|()| c.recipe.train.validate())
        .and_then(|()| c.recipe.model.validate())
        .map_err(|e| e.in_file(&path))?;
    Ok(c)
}

/// A context on a new [`crate::driver::Session`] with `opts` that reports each run to
/// `on_run`.
pub fn with_context<'a, T>(
    opts: &RunOptions,
    on_run: impl FnMut(&str, bool) + 'a,
    body: impl FnOnce(&mut Context<'a>) -> Result<T>,
) -> Result<T> {
    let mut ctx = Context::new(crate::driver::Session::new(opts, on_run)?);
    body(&mut ctx)
}

pub use transferlab_report::stats::Results;

/// Files each run's test accuracy under its cell as a proportion of its test set (so that its
/// summaries are [`transferlab_report::stats::summarize_proportion`]'s, inside [0, 1]): the
/// test size is that of the target whose name begins the cell (`{target}/…`), from
/// `test_sizes` (target name → items in its test set).
pub fn push_accuracies(
    results: &mut Results,
    done: Vec<(String, crate::xfer::runner::AdaptResult)>,
    test_sizes: &std::collections::BTreeMap<String, usize>,
) -> Result<()> {
    for (cell, r) in done {
        let n = test_sizes
            .iter()
            .filter(|(t, _)| cell.starts_with(&format!("{t}/")))
            .max_by_key(|(t, _)| t.len())
            .map(|(_, n)| *n)
            .ok_or_else(|| {
                core_tensor::Error::InvalidArgument(format!(
                    "{cell}: no target's test set begins this cell (known: {:?})",
                    test_sizes.keys().collect::<Vec<_>>()
                ))
            })?;
        results.push_proportion(cell, r.test_accuracy, n);
    }
    Ok(())
}

pub use transferlab_report::pts;
