//! The training engine: epochs of shuffled mini-batches, an [`Optimizer`] with parameter
//! groups, a learning-rate [`Schedule`], gradient clipping, early stopping that restores the best
//! weights, divergence detection, and hooks for extra loss terms and gradient editing.
//!
//! The engine does not know what a model is: the caller's loss closure runs the forward pass on
//! a batch and returns a scalar loss ([`Trainer::fit`]), or the caller's [`Objective`] does the
//! whole backward pass itself ([`Trainer::fit_objective`]: `multitask`'s balancers, which
//! combine per-task losses or their gradients, run there), so one engine serves a single-head
//! classifier, a multi-head network with per-task masked losses, or a regression, with one
//! behaviour for early stopping, divergence and NaN. Validation is also a closure returning the
//! metric that early stopping watches.
//!
//! **Non-finite values are errors**, never skipped: a training loss or gradient norm that is
//! NaN or infinite is [`Error::Diverged`]; a validation metric that is, an
//! [`Error::InvalidArgument`] naming the epoch.
//!
//! Progress goes out as `tracing` events (one per epoch) and through an optional callback
//! per step, which a binary can turn into a progress bar.

use std::collections::HashMap;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use tch::nn::{ModuleT, VarStore};
use tch::{Device, Kind, Tensor};

use crate::data::TensorDataset;
use crate::optim::{GroupSpec, Optimizer, OptimizerKind};
use crate::schedule::Schedule;
use crate::{Error, Result};

/// What the engine does, as read from an experiment's TOML.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// Passes over the training data (the most; early stopping may end sooner).
    pub epochs: usize,
    /// Examples per step.
    pub batch_size: usize,
    /// The update rule.
    pub optimizer: OptimizerKind,
    /// Base learning rate (of every group unless groups say otherwise).
    pub lr: f64,
    /// Weight decay (of every group unless groups say otherwise).
    #[serde(default)]
    pub weight_decay: f64,
    /// Learning-rate schedule over steps.
    #[serde(default)]
    pub schedule: Schedule,
    /// Clip the global gradient norm to this value.
    #[serde(default)]
    pub grad_clip_norm: Option<f64>,
    /// Stop when the validation metric stops improving.
    #[serde(default)]
    pub early_stopping: Option<EarlyStopping>,
}

/// Early stopping on a validation metric.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EarlyStopping {
    /// Epochs without improvement before stopping.
    pub patience: usize,
    /// The smallest change that counts as an improvement.
    #[serde(default)]
    pub min_delta: f64,
    /// Whether larger (accuracy) or smaller (loss) is better.
    pub goal: Goal,
    /// Put back the weights of the best epoch at the end.
    #[serde(default = "yes")]
    pub restore_best: bool,
    /// Never stop before this many epochs, however long the metric has not improved (0: no
    /// floor). A step budget on a small training set sets it, so that training runs its
    /// minimum number of steps ([`TrainConfig::with_min_steps`]).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub min_epochs: usize,
    /// When an epoch's metric equals the best one exactly (accuracy on a few validation
    /// examples moves in coarse steps and ties often), the trainer's tie-break score (a
    /// validation loss, smaller is better: [`Trainer::tie_break`]) decides; a lower one counts
    /// as an improvement. [`EarlyStopping::default`] breaks ties; a config file that leaves
    /// this out does not (the behaviour before it existed, so stored run keys stay valid).
    #[serde(default, skip_serializing_if = "is_false")]
    pub break_ties: bool,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn yes() -> bool {
    true
}

impl Default for TrainConfig {
    /// Adam at learning rate 1e-3, batches of 32, at most 20 epochs, no weight decay, a constant
    /// learning rate, no clipping, and [`EarlyStopping::default`] (the best validation
    /// accuracy's weights kept). For a small training set, where an epoch is one or two steps,
    /// give it a step budget with [`TrainConfig::with_step_budget`].
    fn default() -> Self {
        TrainConfig {
            epochs: 20,
            batch_size: 32,
            optimizer: OptimizerKind::adam(),
            lr: 1e-3,
            weight_decay: 0.0,
            schedule: Schedule::default(),
            grad_clip_norm: None,
            early_stopping: Some(EarlyStopping::default()),
        }
    }
}

impl Default for EarlyStopping {
    /// Validation accuracy watched (maximised), 5 epochs of patience, any increase counts, ties
    /// broken by the tie-break score (the validation loss, where the caller gives one), the
    /// best epoch's weights restored at the end.
    fn default() -> Self {
        EarlyStopping {
            patience: 5,
            min_delta: 0.0,
            goal: Goal::Maximize,
            restore_best: true,
            min_epochs: 0,
            break_ties: true,
        }
    }
}

/// Direction of a metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Goal {
    /// Larger is better.
    Maximize,
    /// Smaller is better.
    Minimize,
}

impl Goal {
    fn improves(self, new: f64, best: f64, min_delta: f64) -> bool {
        match self {
            Goal::Maximize => new > best + min_delta,
            Goal::Minimize => new < best - min_delta,
        }
    }
}

impl TrainConfig {
    /// The epochs that give at least `min_steps` optimiser steps on `examples` examples, within
    /// `[self.epochs, max_epochs]` (`self.epochs` wins if `max_epochs` is smaller).
    pub fn epochs_for_steps(&self, examples: usize, min_steps: usize, max_epochs: usize) -> usize {
        let per_epoch = examples.div_ceil(self.batch_size).max(1);
        min_steps
            .div_ceil(per_epoch)
            .clamp(self.epochs, max_epochs.max(self.epochs))
    }

    /// These settings for `examples` training examples under a step budget: the epochs of
    /// [`TrainConfig::epochs_for_steps`], and an early-stopping patience of at least a quarter
    /// of `min_steps` in steps, so that small sets (one step an epoch) are neither under-trained
    /// nor stopped by a few noisy validation scores.
    pub fn with_step_budget(&self, examples: usize, min_steps: usize, max_epochs: usize) -> Self {
        let mut t = self.clone();
        t.epochs = self.epochs_for_steps(examples, min_steps, max_epochs);
        let per_epoch = examples.div_ceil(t.batch_size).max(1);
        if let Some(es) = &mut t.early_stopping {
            es.patience = es.patience.max((min_steps / 4).div_ceil(per_epoch));
        }
        t
    }

    /// [`TrainConfig::with_step_budget`], and early stopping may not stop before the epoch at
    /// which `min_steps` steps are done: at least `min_steps` optimizer steps, whatever the
    /// validation scores (as far as `max_epochs` allows).
    pub fn with_min_steps(&self, examples: usize, min_steps: usize, max_epochs: usize) -> Self {
        let mut t = self.with_step_budget(examples, min_steps, max_epochs);
        let per_epoch = examples.div_ceil(t.batch_size).max(1);
        let epochs = t.epochs;
        if let Some(es) = &mut t.early_stopping {
            es.min_epochs = es.min_epochs.max(min_steps.div_ceil(per_epoch).min(epochs));
        }
        t
    }

    /// Checks every field, naming the bad one.
    pub fn validate(&self) -> Result<()> {
        let bad = |f: &str, why: &str| Err(Error::InvalidArgument(format!("train.{f}: {why}")));
        if self.epochs == 0 {
            return bad("epochs", "must be > 0");
        }
        if self.batch_size == 0 {
            return bad("batch_size", "must be > 0");
        }
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return bad("lr", "must be a positive number");
        }
        if !(self.weight_decay >= 0.0) {
            return bad("weight_decay", "must be >= 0");
        }
        if let Some(c) = self.grad_clip_norm
            && !(c > 0.0)
        {
            return bad("grad_clip_norm", "must be > 0");
        }
        if let Some(es) = &self.early_stopping
            && es.patience == 0
        {
            return bad("early_stopping.patience", "must be > 0");
        }
        self.optimizer.validate()?;
        self.schedule.validate()
    }
}

/// One epoch of a [`FitReport`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EpochLog {
    /// Epoch (1-based).
    pub epoch: usize,
    /// Mean training loss over the epoch's steps (including extra loss terms).
    pub train_loss: f64,
    /// The validation metric after the epoch, if validation ran.
    pub validation: Option<f64>,
    /// Learning rate of the first group at the epoch's last step.
    pub lr: f64,
    /// Wall time of the epoch, validation included.
    pub seconds: f64,
    /// Wall time of the epoch's training steps alone (validation excluded).
    #[serde(default)]
    pub train_seconds: f64,
}

/// What [`Trainer::fit`] did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FitReport {
    /// Per-epoch logs.
    pub epochs: Vec<EpochLog>,
    /// The epoch whose weights the model holds at the end (the best one under early
    /// stopping with `restore_best`, else the last).
    pub final_epoch: usize,
    /// The best validation metric seen.
    pub best_validation: Option<f64>,
    /// True when early stopping ended training before `epochs`.
    pub stopped_early: bool,
    /// Optimizer steps taken.
    pub steps: u64,
    /// Wall time of the whole fit.
    pub seconds: f64,
}

/// Where training is, for a progress display.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    /// Epoch (1-based).
    pub epoch: usize,
    /// Most epochs.
    pub epochs: usize,
    /// Steps done in this epoch.
    pub step: usize,
    /// Steps per epoch.
    pub steps_per_epoch: usize,
}

type LossTerm<'a> = Box<dyn Fn() -> Tensor + 'a>;
type Score<'a> = Box<dyn FnMut() -> Result<f64> + 'a>;

/// What one training step computes, for [`Trainer::fit_objective`]: the forward pass on a
/// batch and the whole backward pass, however many it takes (a multi-task balancer may run
/// one per task and edit the gradients).
pub trait Objective {
    /// Runs the forward pass on `(inputs, targets)` in training mode and leaves the gradients
    /// of the objective in the variables' `.grad()` (zero on entry); returns the objective's
    /// value as a detached scalar. `step` is the optimizer step (0-based).
    fn backward(&mut self, inputs: &Tensor, targets: &Tensor, step: u64) -> Result<Tensor>;

    /// Called after each epoch's training steps, before validation.
    fn end_epoch(&mut self, _epoch: usize, _optimizer: &Optimizer) -> Result<()> {
        Ok(())
    }
}

/// [`Trainer::fit`]'s objective: a loss closure plus the trainer's extra loss terms, one
/// backward pass.
struct LossObjective<'t, 'a, F> {
    loss: F,
    terms: &'t [LossTerm<'a>],
}

impl<F: FnMut(&Tensor, &Tensor) -> Tensor> Objective for LossObjective<'_, '_, F> {
    fn backward(&mut self, inputs: &Tensor, targets: &Tensor, _step: u64) -> Result<Tensor> {
        let mut total = (self.loss)(inputs, targets);
        for term in self.terms {
            total = total + term();
        }
        if total.numel() != 1 {
            return Err(Error::InvalidArgument(format!(
                "the loss must be a scalar, got shape {:?}",
                total.size()
            )));
        }
        // A non-finite loss is caught by the engine before the update.
        total.f_backward()?;
        Ok(total.detach())
    }
}
type GradHook<'a> = Box<dyn FnMut(&Optimizer) -> Result<()> + 'a>;
type ProgressHook<'a> = Box<dyn FnMut(Progress) + 'a>;

/// Trains the variables of one [`VarStore`].
pub struct Trainer<'a> {
    vs: &'a VarStore,
    optimizer: Optimizer,
    cfg: TrainConfig,
    loss_terms: Vec<LossTerm<'a>>,
    grad_hook: Option<GradHook<'a>>,
    progress: Option<ProgressHook<'a>>,
    tie_break: Option<Score<'a>>,
    validation_goal: Goal,
    seed: u64,
}

impl std::fmt::Debug for Trainer<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trainer")
            .field("cfg", &self.cfg)
            .field("optimizer", &self.optimizer)
            .finish()
    }
}

impl<'a> Trainer<'a> {
    /// A trainer with one parameter group holding every trainable variable.
    pub fn new(vs: &'a VarStore, cfg: TrainConfig) -> Result<Self> {
        let group = GroupSpec {
            name: "all".into(),
            prefixes: vec![],
            lr: cfg.lr,
            weight_decay: cfg.weight_decay,
        };
        Self::with_groups(vs, cfg, &[group])
    }

    /// A trainer with parameter groups (their `lr` and `weight_decay` replace the config's).
    pub fn with_groups(vs: &'a VarStore, cfg: TrainConfig, groups: &[GroupSpec]) -> Result<Self> {
        cfg.validate()?;
        // One draw from libtorch's generator: seeded runs stay repeatable, and the shuffling
        // itself never touches the global generator again (see `data::permutation`).
        let seed = Tensor::f_randint(i64::MAX, [1], (Kind::Int64, Device::Cpu))?
            .f_int64_value(&[0])? as u64;
        Self::build(vs, cfg, groups, seed)
    }

    /// [`Trainer::with_groups`] with the batch order's seed given, so that building the
    /// trainer draws nothing from libtorch's generator.
    pub fn with_groups_seeded(
        vs: &'a VarStore,
        cfg: TrainConfig,
        groups: &[GroupSpec],
        seed: u64,
    ) -> Result<Self> {
        cfg.validate()?;
        Self::build(vs, cfg, groups, seed)
    }

    /// A trainer for a validated `cfg`.
    fn build(vs: &'a VarStore, cfg: TrainConfig, groups: &[GroupSpec], seed: u64) -> Result<Self> {
        let optimizer = Optimizer::with_groups(vs, cfg.optimizer.clone(), groups)?;
        Ok(Trainer {
            vs,
            optimizer,
            cfg,
            loss_terms: Vec::new(),
            grad_hook: None,
            progress: None,
            tie_break: None,
            validation_goal: Goal::Maximize,
            seed,
        })
    }

    /// Adds a term to every step's loss (e.g. an L2-SP penalty computed from the variables).
    pub fn add_loss_term(mut self, term: impl Fn() -> Tensor + 'a) -> Self {
        self.loss_terms.push(Box::new(term));
        self
    }

    /// Calls `hook` after the backward pass and before clipping and the update, to read or
    /// edit gradients (e.g. PCGrad's projections).
    pub fn on_gradients(mut self, hook: impl FnMut(&Optimizer) -> Result<()> + 'a) -> Self {
        self.grad_hook = Some(Box::new(hook));
        self
    }

    /// Calls `hook` after every step with where training is.
    pub fn on_progress(mut self, hook: impl FnMut(Progress) + 'a) -> Self {
        self.progress = Some(Box::new(hook));
        self
    }

    /// The score (smaller is better, typically the validation loss) that decides between an
    /// epoch whose validation metric ties the best one and the best one, when early stopping
    /// has [`EarlyStopping::break_ties`]. It runs after the epochs that improve or tie, not
    /// otherwise.
    pub fn tie_break(mut self, score: impl FnMut() -> Result<f64> + 'a) -> Self {
        self.tie_break = Some(Box::new(score));
        self
    }

    /// The direction of the validation metric when there is no early stopping (whose `goal`
    /// says it otherwise): which value [`FitReport::best_validation`] reports. Default:
    /// [`Goal::Maximize`] (an accuracy).
    pub fn validation_goal(mut self, goal: Goal) -> Self {
        self.validation_goal = goal;
        self
    }

    /// Sets the seed of the batch order (by default drawn once from libtorch's generator).
    pub fn shuffle_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// The optimizer (learning rates, groups).
    pub fn optimizer(&self) -> &Optimizer {
        &self.optimizer
    }

    /// Trains on `data`. `loss` runs the forward pass on a batch (inputs, targets) in training
    /// mode and returns a scalar; `validate`, if given, runs after each epoch and returns the
    /// metric that early stopping watches.
    pub fn fit(
        &mut self,
        data: &TensorDataset,
        loss: impl FnMut(&Tensor, &Tensor) -> Tensor,
        validate: Option<&mut dyn FnMut() -> Result<f64>>,
    ) -> Result<FitReport> {
        let terms = std::mem::take(&mut self.loss_terms);
        let mut objective = LossObjective {
            loss,
            terms: &terms,
        };
        let report = self.fit_objective(data, &mut objective, validate);
        self.loss_terms = terms;
        report
    }

    /// Trains on `data` with an [`Objective`] that does each step's backward pass itself; the
    /// engine does the rest as in [`Trainer::fit`]: batches, learning-rate schedule, the
    /// gradient hook, clipping, the update, divergence checks, validation, early stopping.
    /// Extra loss terms ([`Trainer::add_loss_term`]) belong to `fit`; here they are an error
    /// (put them in the objective).
    pub fn fit_objective(
        &mut self,
        data: &TensorDataset,
        objective: &mut dyn Objective,
        mut validate: Option<&mut dyn FnMut() -> Result<f64>>,
    ) -> Result<FitReport> {
        if !self.loss_terms.is_empty() {
            return Err(Error::InvalidArgument(
                "Trainer::fit_objective: extra loss terms apply to Trainer::fit; add them to \
                 the objective instead"
                    .into(),
            ));
        }
        if data.is_empty() {
            return Err(Error::InvalidArgument("the training data is empty".into()));
        }
        let start = Instant::now();
        let device = data.inputs.device();
        let es = self.cfg.early_stopping.clone();
        if es.is_some() && validate.is_none() {
            return Err(Error::InvalidArgument(
                "train.early_stopping needs a validation function; pass one to fit".into(),
            ));
        }
        let mut logs = Vec::new();
        let mut best: Option<(f64, usize)> = None;
        let mut best_tie: Option<f64> = None;
        let mut best_weights: Option<HashMap<String, Tensor>> = None;
        let mut stale = 0;
        let mut stopped_early = false;
        // Reading the loss synchronises a GPU; on the CPU it is nearly free.
        let check_every = if device == Device::Cpu { 1 } else { 50 };
        for epoch in 1..=self.cfg.epochs {
            let epoch_start = Instant::now();
            let epoch_seed = crate::data::splitmix64(self.seed ^ epoch as u64);
            let batches = data.shuffled_batches(self.cfg.batch_size, epoch_seed);
            let steps_per_epoch = batches.num_batches();
            let mut loss_sum = Tensor::zeros([], (Kind::Float, device));
            let mut steps = 0usize;
            for (step, (xb, yb)) in batches.enumerate() {
                let factor = self.cfg.schedule.factor(self.optimizer.steps());
                self.optimizer.set_lr_factor(factor);
                self.optimizer.zero_grad()?;
                let total = objective.backward(&xb, &yb, self.optimizer.steps())?;
                if step % check_every == 0 {
                    let v = total.f_double_value(&[])?;
                    if !v.is_finite() {
                        return Err(Error::Diverged {
                            epoch,
                            step,
                            loss: v,
                        });
                    }
                }
                if let Some(hook) = self.grad_hook.as_mut() {
                    hook(&self.optimizer)?;
                }
                if let Some(max) = self.cfg.grad_clip_norm {
                    let norm = self.optimizer.clip_grad_norm(max)?;
                    if !norm.is_finite() {
                        // A NaN or infinite gradient would be scaled into the weights.
                        return Err(Error::Diverged {
                            epoch,
                            step,
                            loss: norm,
                        });
                    }
                }
                self.optimizer.step()?;
                loss_sum += total;
                steps += 1;
                if let Some(p) = self.progress.as_mut() {
                    p(Progress {
                        epoch,
                        epochs: self.cfg.epochs,
                        step: step + 1,
                        steps_per_epoch,
                    });
                }
            }
            let train_loss = loss_sum.f_double_value(&[])? / steps.max(1) as f64;
            let train_seconds = epoch_start.elapsed().as_secs_f64();
            if !train_loss.is_finite() {
                return Err(Error::Diverged {
                    epoch,
                    step: steps.saturating_sub(1),
                    loss: train_loss,
                });
            }
            objective.end_epoch(epoch, &self.optimizer)?;
            let validation = match validate.as_mut() {
                Some(v) => Some(v()?),
                None => None,
            };
            if let Some(v) = validation.filter(|v| !v.is_finite()) {
                return Err(Error::InvalidArgument(format!(
                    "the validation metric is {v} after epoch {epoch}: the model diverged, or \
                     the validation set has nothing to measure"
                )));
            }
            let lr = self
                .optimizer
                .learning_rates()
                .first()
                .map(|g| g.1)
                .unwrap_or(0.0);
            let seconds = epoch_start.elapsed().as_secs_f64();
            tracing::info!(
                epoch,
                epochs = self.cfg.epochs,
                train_loss,
                ?validation,
                lr,
                seconds,
                "epoch"
            );
            logs.push(EpochLog {
                epoch,
                train_loss,
                validation,
                lr,
                seconds,
                train_seconds,
            });

            if let (Some(es), Some(metric)) = (&es, validation) {
                let mut better = match best {
                    None => true,
                    Some((b, _)) => es.goal.improves(metric, b, es.min_delta),
                };
                let tied = best.is_some_and(|(b, _)| metric == b);
                if let (true, Some(score)) = (es.break_ties, self.tie_break.as_mut())
                    && (better || tied)
                {
                    let s = score()?;
                    if better || best_tie.is_none_or(|t| s < t) {
                        if tied && !better {
                            tracing::debug!(epoch, metric, tie_break = s, "tie broken");
                        }
                        better = true;
                        best_tie = Some(s);
                    }
                }
                if better {
                    best = Some((metric, epoch));
                    stale = 0;
                    if es.restore_best {
                        best_weights = Some(snapshot(self.vs));
                    }
                } else {
                    stale += 1;
                    if stale >= es.patience && epoch >= es.min_epochs {
                        stopped_early = epoch < self.cfg.epochs;
                        tracing::info!(epoch, best_epoch = best.map(|b| b.1), "early stopping");
                        break;
                    }
                }
            } else if let Some(metric) = validation {
                // No early stopping: still report the best value seen, in the direction given.
                if best.is_none_or(|(b, _)| self.validation_goal.improves(metric, b, 0.0)) {
                    best = Some((metric, epoch));
                }
            }
        }
        let last = logs.last().map(|l| l.epoch).unwrap_or(0);
        let final_epoch = match (&best_weights, best) {
            (Some(weights), Some((_, epoch))) => {
                restore(self.vs, weights)?;
                epoch
            }
            _ => last,
        };
        Ok(FitReport {
            epochs: logs,
            final_epoch,
            best_validation: best.map(|b| b.0),
            stopped_early,
            steps: self.optimizer.steps(),
            seconds: start.elapsed().as_secs_f64(),
        })
    }
}

/// A copy of every variable (parameters and buffers such as batch-norm statistics).
pub fn snapshot(vs: &VarStore) -> HashMap<String, Tensor> {
    let _guard = tch::no_grad_guard();
    vs.variables()
        .into_iter()
        .map(|(k, v)| (k, v.detach().copy()))
        .collect()
}

/// Writes a [`snapshot`] back into the variables.
pub fn restore(vs: &VarStore, weights: &HashMap<String, Tensor>) -> Result<()> {
    let _guard = tch::no_grad_guard();
    for (name, mut var) in vs.variables() {
        let saved = weights
            .get(&name)
            .ok_or_else(|| Error::InvalidArgument(format!("snapshot has no variable {name:?}")))?;
        var.f_copy_(saved)?;
    }
    Ok(())
}

/// Runs `model` in evaluation mode over `inputs` in batches of `batch_size`, without
/// gradients, and concatenates the outputs.
pub fn predict<M: ModuleT + ?Sized>(
    model: &M,
    inputs: &Tensor,
    batch_size: usize,
) -> Result<Tensor> {
    let _guard = tch::no_grad_guard();
    let n = inputs.size().first().copied().unwrap_or(0);
    let bs = batch_size.max(1) as i64;
    let mut outs = Vec::new();
    let mut i = 0;
    while i < n {
        let len = bs.min(n - i);
        outs.push(model.forward_t(&inputs.narrow(0, i, len), false));
        i += len;
    }
    Ok(Tensor::f_cat(&outs, 0)?)
}

/// Accuracy of `model`'s arg-max predictions on `data` (evaluation mode, batched).
pub fn accuracy<M: ModuleT + ?Sized>(
    model: &M,
    data: &TensorDataset,
    batch_size: usize,
) -> Result<f64> {
    if data.is_empty() {
        return Err(Error::InvalidArgument(
            "accuracy of an empty dataset".into(),
        ));
    }
    let logits = predict(model, &data.inputs, batch_size)?;
    let correct = logits
        .argmax(-1, false)
        .eq_tensor(&data.targets)
        .sum(Kind::Int64);
    Ok(correct.f_int64_value(&[])? as f64 / data.len() as f64)
}
