//! Training and evaluating a [`MultiTaskNet`]: the multi-task counterpart of
//! [`core_tensor::train::Trainer`], with the same recipe (optimizer, schedule, clipping, early
//! stopping that restores the best weights, divergence errors naming epoch and step), where a
//! [`Balancer`] turns the per-task losses into gradients.
//!
//! Data is a [`TensorDataset`] whose targets are `[N, T]` float with NaN for missing labels
//! (see [`crate::task`]). Single-task baselines are the same net and trainer with one task:
//! [`MultiTaskConfig::single_task`] and [`select_tasks`] give their configuration and targets,
//! so both arms share every other choice.

use std::collections::BTreeMap;

use core_tensor::data::TensorDataset;
use core_tensor::optim::{GroupSpec, Optimizer};
use core_tensor::train::{Goal, Objective, TrainConfig, Trainer};
use core_tensor::{Error, Result};
use pretrained_zoo::arch::ArchConfig;
use serde::{Deserialize, Serialize};
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

use crate::balance::{BALANCER, Balancer, BalancerConfig};
use crate::net::{MultiTaskNet, SharedParams};
use crate::task::{MetricKind, TaskKind, TaskSpec, validate_tasks};

/// A multi-task model and how to train it, as read from an experiment's TOML:
///
/// ```toml
/// model = { arch = "resnet", width = 8, blocks = [1, 1, 1], classes = 1 }
/// tasks = [{ name = "has3", kind = "binary" }, { name = "count", kind = "regression" }]
/// balancer = { kind = "uncertainty" }
/// [train]
/// epochs = 10
/// batch_size = 64
/// optimizer = { kind = "adam" }
/// lr = 1e-3
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MultiTaskConfig {
    /// The shared trunk (its `classes` only sizes the unused zoo head).
    pub model: ArchConfig,
    /// The tasks, in target-column order.
    pub tasks: Vec<TaskSpec>,
    /// The loss balancing.
    pub balancer: BalancerConfig,
    /// The training recipe.
    pub train: TrainConfig,
}

impl MultiTaskConfig {
    /// Checks every part; errors name the bad field (`tasks[1].classes`, `balancer.alpha`,
    /// `train.lr`, …).
    pub fn validate(&self) -> Result<()> {
        self.model.validate()?;
        validate_tasks(&self.tasks)?;
        self.balancer.validate(self.tasks.len())?;
        self.train.validate()?;
        if let Some(es) = &self.train.early_stopping
            && es.goal != Goal::Minimize
        {
            return Err(Error::InvalidArgument(
                "train.early_stopping.goal: multi-task early stopping watches the mean \
                     validation loss of the tasks, so the goal must be \"minimize\""
                    .into(),
            ));
        }
        Ok(())
    }

    /// The single-task baseline of task `t`: the same trunk and recipe, task `t` alone, equal
    /// weighting (with one task every balancer reduces to it, up to uncertainty's scale).
    pub fn single_task(&self, t: usize) -> Result<MultiTaskConfig> {
        let task = self.tasks.get(t).ok_or_else(|| {
            Error::InvalidArgument(format!("task {t} of {} tasks", self.tasks.len()))
        })?;
        Ok(MultiTaskConfig {
            model: self.model.clone(),
            tasks: vec![task.clone()],
            balancer: BalancerConfig::Equal,
            train: self.train.clone(),
        })
    }
}

/// The columns `columns` of `[N, T]` targets (for single-task baselines and task subsets).
pub fn select_tasks(targets: &Tensor, columns: &[usize]) -> Result<Tensor> {
    let idx: Vec<i64> = columns.iter().map(|&c| c as i64).collect();
    Ok(targets.f_index_select(1, &Tensor::from_slice(&idx).to_device(targets.device()))?)
}

/// One epoch of a [`MultiTaskFitReport`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MultiTaskEpochLog {
    /// Epoch (1-based).
    pub epoch: usize,
    /// Mean combined (balanced) training loss over the epoch's steps.
    pub train_loss: f64,
    /// Each task's mean training loss over its labels (`None`: no label this epoch).
    pub task_losses: Vec<Option<f64>>,
    /// Each task's mean weight over the epoch's steps.
    pub weights: Vec<f64>,
    /// The validation value after the epoch (mean validation loss), if validation ran.
    pub validation: Option<f64>,
    /// Learning rate of the network's group at the epoch's last step.
    pub lr: f64,
    /// Wall time of the epoch's training steps (validation excluded).
    pub train_seconds: f64,
    /// Optimizer steps in the epoch.
    pub steps: usize,
}

/// What [`MultiTaskTrainer::fit`] did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MultiTaskFitReport {
    /// The balancer's name.
    pub balancer: String,
    /// Per-epoch logs.
    pub epochs: Vec<MultiTaskEpochLog>,
    /// The epoch whose weights the model holds at the end.
    pub final_epoch: usize,
    /// The best validation value seen.
    pub best_validation: Option<f64>,
    /// True when early stopping ended training before `epochs`.
    pub stopped_early: bool,
    /// Optimizer steps taken.
    pub steps: u64,
    /// Mean wall time of a training step (forward, balancing, update), for cost comparisons.
    pub seconds_per_step: f64,
    /// Wall time of the whole fit.
    pub seconds: f64,
}

type InputMap<'a> = Box<dyn Fn(&Tensor) -> Tensor + 'a>;

/// Trains a [`MultiTaskNet`] with a [`Balancer`], on `core_tensor`'s training engine: the
/// balancer shapes each step's backward pass (an [`Objective`]); batches, schedule, clipping,
/// divergence and NaN checks, validation and early stopping are the engine's, the same as for
/// a single-task network.
pub struct MultiTaskTrainer<'a> {
    net: &'a MultiTaskNet,
    balancer: Box<dyn Balancer>,
    trainer: Trainer<'a>,
    map_inputs: Option<InputMap<'a>>,
    params: SharedParams,
}

impl std::fmt::Debug for MultiTaskTrainer<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MultiTaskTrainer")
            .field("balancer", &self.balancer.name())
            .field("trainer", &self.trainer)
            .finish()
    }
}

impl<'a> MultiTaskTrainer<'a> {
    /// A trainer for `net` (built in `vs`). Creates the balancer's variables in `vs` and the
    /// optimizer: group `"balancer"` (the balancer's variables, its `lr` or the training lr,
    /// no weight decay) and group `"all"` (every other trainable variable). `seed` fixes the
    /// batch order and PCGrad's projection order.
    pub fn new(
        vs: &'a VarStore,
        net: &'a MultiTaskNet,
        balancer: &BalancerConfig,
        cfg: TrainConfig,
        seed: u64,
    ) -> Result<Self> {
        cfg.validate()?;
        let balancer_impl = balancer.build(&vs.root(), net.tasks().len(), seed)?;
        Self::with_balancer(vs, net, balancer_impl, balancer.lr(), cfg, seed)
    }

    /// A trainer with a balancer of your own: any [`Balancer`] implementation. Variables it
    /// trains (like uncertainty weighting's `log_var`) must be in `vs` under `balancer.`
    /// ([`BALANCER`]: create them at `vs.root() / BALANCER` before this call); they get
    /// their own optimizer group at `balancer_lr` (default: the training lr), no weight decay.
    pub fn with_balancer(
        vs: &'a VarStore,
        net: &'a MultiTaskNet,
        balancer: Box<dyn Balancer>,
        balancer_lr: Option<f64>,
        cfg: TrainConfig,
        seed: u64,
    ) -> Result<Self> {
        if let Some(lr) = balancer_lr
            && !(lr > 0.0 && lr.is_finite())
        {
            return Err(Error::InvalidArgument(format!(
                "balancer.lr: must be a positive number, got {lr}"
            )));
        }
        let groups = [
            GroupSpec {
                name: BALANCER.into(),
                prefixes: vec![BALANCER.into()],
                lr: balancer_lr.unwrap_or(cfg.lr),
                weight_decay: 0.0,
            },
            GroupSpec {
                name: "all".into(),
                prefixes: vec![],
                lr: cfg.lr,
                weight_decay: cfg.weight_decay,
            },
        ];
        // The validation value of a multi-task fit is a loss unless early stopping says
        // otherwise (its `goal`).
        let trainer =
            Trainer::with_groups_seeded(vs, cfg, &groups, seed)?.validation_goal(Goal::Minimize);
        Ok(MultiTaskTrainer {
            net,
            balancer,
            trainer,
            map_inputs: None,
            params: net.params(vs),
        })
    }

    /// Applies `f` to every training batch's inputs before the forward pass (e.g. u8 images
    /// to float, or an augmentation).
    pub fn map_inputs(mut self, f: impl Fn(&Tensor) -> Tensor + 'a) -> Self {
        self.map_inputs = Some(Box::new(f));
        self
    }

    /// Calls `hook` after every step with where training is (for a progress bar).
    pub fn on_progress(mut self, hook: impl FnMut(core_tensor::train::Progress) + 'a) -> Self {
        self.trainer = self.trainer.on_progress(hook);
        self
    }

    /// The optimizer.
    pub fn optimizer(&self) -> &Optimizer {
        self.trainer.optimizer()
    }

    /// Trains on `data` (targets `[N, T]`, NaN for missing labels). `validate`, if given, runs
    /// after each epoch and returns the value early stopping watches in the direction of its
    /// `goal` (e.g. [`mean_loss`] of [`evaluate`] on a validation set, minimised).
    pub fn fit(
        &mut self,
        data: &TensorDataset,
        validate: Option<&mut dyn FnMut() -> Result<f64>>,
    ) -> Result<MultiTaskFitReport> {
        let tasks = self.net.tasks();
        let t = tasks.len() as i64;
        if data.targets.size() != [data.len() as i64, t] {
            return Err(Error::InvalidArgument(format!(
                "multi-task targets must be [N, {t}] (one column per task), got {:?}",
                data.targets.size()
            )));
        }
        if data.is_empty() {
            return Err(Error::InvalidArgument("training data is empty".into()));
        }
        let device = data.inputs.device();
        let mut objective = Balancing {
            net: self.net,
            balancer: self.balancer.as_mut(),
            params: &self.params,
            map_inputs: self.map_inputs.as_deref(),
            epoch: EpochSums::new(t, device),
            logs: Vec::new(),
        };
        let report = self.trainer.fit_objective(data, &mut objective, validate)?;
        let Balancing { logs, .. } = objective;
        let epochs: Vec<MultiTaskEpochLog> = report
            .epochs
            .iter()
            .zip(logs)
            .map(|(e, b)| MultiTaskEpochLog {
                epoch: e.epoch,
                train_loss: e.train_loss,
                task_losses: b.task_losses,
                weights: b.weights,
                validation: e.validation,
                lr: b.lr,
                train_seconds: e.train_seconds,
                steps: b.steps,
            })
            .collect();
        let train_seconds: f64 = epochs.iter().map(|e| e.train_seconds).sum();
        Ok(MultiTaskFitReport {
            balancer: self.balancer.name().into(),
            epochs,
            final_epoch: report.final_epoch,
            best_validation: report.best_validation,
            stopped_early: report.stopped_early,
            steps: report.steps,
            seconds_per_step: train_seconds / report.steps.max(1) as f64,
            seconds: report.seconds,
        })
    }
}

/// One epoch's running sums of a multi-task fit (on the device: no host sync per step).
struct EpochSums {
    task_sum: Tensor,
    task_count: Tensor,
    weight_sum: Tensor,
    steps: usize,
}

impl EpochSums {
    fn new(tasks: i64, device: Device) -> Self {
        let zeros = || Tensor::zeros([tasks], (Kind::Float, device));
        EpochSums {
            task_sum: zeros(),
            task_count: zeros(),
            weight_sum: zeros(),
            steps: 0,
        }
    }
}

/// What a multi-task epoch adds to the engine's log.
struct BalancingLog {
    task_losses: Vec<Option<f64>>,
    weights: Vec<f64>,
    lr: f64,
    steps: usize,
}

/// The multi-task [`Objective`]: per-task masked losses on the shared representation, combined
/// by the balancer's backward pass.
struct Balancing<'n, 'b> {
    net: &'n MultiTaskNet,
    balancer: &'b mut dyn Balancer,
    params: &'n SharedParams,
    map_inputs: Option<&'n (dyn Fn(&Tensor) -> Tensor + 'n)>,
    epoch: EpochSums,
    logs: Vec<BalancingLog>,
}

impl Objective for Balancing<'_, '_> {
    fn backward(&mut self, inputs: &Tensor, targets: &Tensor, step: u64) -> Result<Tensor> {
        let xb = match self.map_inputs {
            Some(f) => f(inputs),
            None => inputs.shallow_clone(),
        };
        let representation = self.net.features(&xb, true);
        let outs = self.net.heads(&representation);
        let tasks = self.net.tasks();
        let mut losses = Vec::with_capacity(tasks.len());
        let mut sums = Vec::with_capacity(tasks.len());
        let mut counts = Vec::with_capacity(tasks.len());
        for (i, task) in tasks.iter().enumerate() {
            let (sum, count) = task.masked_loss(&outs[i], &targets.select(1, i as i64))?;
            losses.push(&sum / count.clamp_min(1.0));
            sums.push(sum.detach());
            counts.push(count);
        }
        let counts = Tensor::f_stack(&counts, 0)?;
        let balanced =
            self.balancer
                .backward(&losses, &counts, self.params, &representation, step)?;
        let e = &mut self.epoch;
        e.task_sum += Tensor::f_stack(&sums, 0)?;
        e.task_count += counts;
        e.weight_sum += balanced.weights.f_to_kind(Kind::Float)?;
        e.steps += 1;
        Ok(balanced.loss)
    }

    fn end_epoch(&mut self, epoch: usize, optimizer: &Optimizer) -> Result<()> {
        let e = &self.epoch;
        let means: Vec<f64> = Vec::try_from(
            (&e.task_sum / &e.task_count)
                .f_to_kind(Kind::Double)?
                .f_to_device(Device::Cpu)?,
        )?;
        self.balancer.end_epoch(&means);
        let task_losses: Vec<Option<f64>> =
            means.iter().map(|m| m.is_finite().then_some(*m)).collect();
        let weights: Vec<f64> = Vec::try_from(
            (&e.weight_sum / e.steps.max(1) as f64)
                .f_to_kind(Kind::Double)?
                .f_to_device(Device::Cpu)?,
        )?;
        let lr = optimizer
            .learning_rates()
            .into_iter()
            .find(|g| g.0 == "all")
            .map_or(0.0, |g| g.1);
        tracing::info!(
            epoch,
            ?task_losses,
            ?weights,
            balancer = self.balancer.name(),
            "multi-task epoch"
        );
        self.logs.push(BalancingLog {
            task_losses,
            weights,
            lr,
            steps: e.steps,
        });
        let (t, device) = (e.task_sum.size()[0], e.task_sum.device());
        self.epoch = EpochSums::new(t, device);
        Ok(())
    }
}

/// One task's scores on a dataset, over its present labels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskEval {
    /// The task's name.
    pub name: String,
    /// Labels present in the data for this task.
    pub labelled: usize,
    /// Every metric of [`TaskSpec::metrics`] that is defined here (AUC needs both classes;
    /// nothing is defined without labels).
    pub metrics: BTreeMap<MetricKind, f64>,
    /// The task's primary metric ([`TaskSpec::primary_metric`]).
    pub primary: MetricKind,
}

impl TaskEval {
    /// The primary metric's value, if defined.
    pub fn primary_value(&self) -> Option<f64> {
        self.metrics.get(&self.primary).copied()
    }
}

/// Scores every task of `net` on `data` (evaluation mode, no gradients, batches of
/// `batch_size`); `map_inputs` as in [`MultiTaskTrainer::map_inputs`].
pub fn evaluate(
    net: &MultiTaskNet,
    data: &TensorDataset,
    batch_size: usize,
    map_inputs: Option<&dyn Fn(&Tensor) -> Tensor>,
) -> Result<Vec<TaskEval>> {
    let _guard = tch::no_grad_guard();
    let tasks = net.tasks();
    let n = data.len() as i64;
    if data.targets.size() != [n, tasks.len() as i64] {
        return Err(Error::InvalidArgument(format!(
            "multi-task targets must be [N, {}], got {:?}",
            tasks.len(),
            data.targets.size()
        )));
    }
    let mut outs: Vec<Vec<Tensor>> = tasks.iter().map(|_| Vec::new()).collect();
    for (xb, _) in data.batches(batch_size) {
        let xb = match map_inputs {
            Some(f) => f(&xb),
            None => xb,
        };
        for (i, o) in net.forward_t(&xb, false).into_iter().enumerate() {
            outs[i].push(o);
        }
    }
    let mut evals = Vec::with_capacity(tasks.len());
    for (i, task) in tasks.iter().enumerate() {
        let target = data.targets.select(1, i as i64).f_to_kind(Kind::Float)?;
        let keep = target
            .f_isnan()?
            .f_logical_not()?
            .f_nonzero()?
            .f_squeeze_dim(1)?;
        let labelled = keep.size()[0] as usize;
        let mut metrics = BTreeMap::new();
        if labelled > 0 {
            let out = Tensor::f_cat(&outs[i], 0)?.f_index_select(0, &keep)?;
            let y = target.f_index_select(0, &keep)?;
            metrics.insert(MetricKind::Loss, task.loss(&out, &y)?.f_double_value(&[])?);
            match task.kind {
                TaskKind::Binary => {
                    let score = out.f_squeeze_dim(1)?.f_to_kind(Kind::Float)?;
                    let correct = score.f_gt(0.0)?.f_to_kind(Kind::Float)?.f_eq_tensor(&y)?;
                    metrics.insert(MetricKind::Accuracy, fraction(&correct)?);
                    if let Some(b) = balanced_accuracy(&score, &y)? {
                        metrics.insert(MetricKind::BalancedAccuracy, b);
                    }
                    if let Ok(auc) = core_tensor::metrics::roc_auc(&score, &y) {
                        metrics.insert(MetricKind::Auc, auc);
                    }
                }
                TaskKind::Multiclass => {
                    let pred = out.f_argmax(1, false)?;
                    let correct = pred.f_eq_tensor(&y.f_to_kind(Kind::Int64)?)?;
                    metrics.insert(MetricKind::Accuracy, fraction(&correct)?);
                }
                TaskKind::Regression => {
                    let pred = out.f_squeeze_dim(1)?.f_to_kind(Kind::Float)?;
                    metrics.insert(MetricKind::Mae, core_tensor::metrics::mae(&pred, &y)?);
                    metrics.insert(MetricKind::Rmse, core_tensor::metrics::rmse(&pred, &y)?);
                }
            }
        }
        evals.push(TaskEval {
            name: task.name.clone(),
            labelled,
            metrics,
            primary: task.primary_metric(),
        });
    }
    Ok(evals)
}

/// The mean of the true-positive rate and the true-negative rate of `score > 0` against the
/// 0/1 labels `y` (both `[N]`); `None` unless both classes occur in `y`.
pub fn balanced_accuracy(score: &Tensor, y: &Tensor) -> Result<Option<f64>> {
    let said = score.f_gt(0.0)?;
    let pos = y.f_gt(0.5)?;
    let neg = pos.f_logical_not()?;
    let rate = |class: &Tensor, right: &Tensor| -> Result<Option<f64>> {
        let n = class.f_sum(Kind::Int64)?.f_int64_value(&[])?;
        let hit = class
            .f_logical_and(right)?
            .f_sum(Kind::Int64)?
            .f_int64_value(&[])?;
        Ok((n > 0).then(|| hit as f64 / n as f64))
    };
    let tpr = rate(&pos, &said)?;
    let tnr = rate(&neg, &said.f_logical_not()?)?;
    Ok(tpr.zip(tnr).map(|(p, n)| 0.5 * (p + n)))
}

fn fraction(correct: &Tensor) -> Result<f64> {
    Ok(correct
        .f_to_kind(Kind::Double)?
        .f_mean(Kind::Double)?
        .f_double_value(&[])?)
}

/// The mean over tasks of their validation loss (tasks without labels left out): what
/// multi-task early stopping minimises. Errors when no task has labels.
pub fn mean_loss(evals: &[TaskEval]) -> Result<f64> {
    let losses: Vec<f64> = evals
        .iter()
        .filter_map(|e| e.metrics.get(&MetricKind::Loss).copied())
        .collect();
    if losses.is_empty() {
        return Err(Error::InvalidArgument(
            "no task has a label in the validation data".into(),
        ));
    }
    Ok(losses.iter().sum::<f64>() / losses.len() as f64)
}

/// What [`train_and_evaluate`] returns.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunResult {
    /// The training run.
    pub fit: MultiTaskFitReport,
    /// Scores on the test data, one per task.
    pub test: Vec<TaskEval>,
}

/// The whole recipe in one call: builds the net of `cfg` on `device` in a fresh `VarStore`
/// (initialised after `tch::manual_seed(seed)`), trains it on `train` with early stopping on
/// the [`mean_loss`] of `validation` (when configured), and scores it on `test`. The datasets
/// must already be on `device`. The same call with [`MultiTaskConfig::single_task`] and
/// [`select_tasks`] gives the single-task baselines.
pub fn train_and_evaluate(
    cfg: &MultiTaskConfig,
    train: &TensorDataset,
    validation: Option<&TensorDataset>,
    test: &TensorDataset,
    seed: u64,
    device: Device,
) -> Result<RunResult> {
    cfg.validate()?;
    tch::manual_seed(seed as i64);
    let vs = VarStore::new(device);
    let net = MultiTaskNet::new(&vs, &cfg.model, &cfg.tasks)?;
    let mut trainer = MultiTaskTrainer::new(&vs, &net, &cfg.balancer, cfg.train.clone(), seed)?;
    let batch = cfg.train.batch_size.max(256);
    let fit = match validation {
        Some(val) => {
            let mut v = || mean_loss(&evaluate(&net, val, batch, None)?);
            trainer.fit(train, Some(&mut v))?
        }
        None => trainer.fit(train, None)?,
    };
    let test = evaluate(&net, test, batch, None)?;
    Ok(RunResult { fit, test })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn balanced_accuracy_ignores_the_base_rate() {
        let y = Tensor::from_slice(&[1.0f32, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]);
        // Always "absent": 75% accurate, 50% balanced.
        let never = Tensor::from_slice(&[-1.0f32; 8]);
        assert_eq!(balanced_accuracy(&never, &y).unwrap(), Some(0.5));
        // One of two positives (TPR 1/2), five of six negatives (TNR 5/6): (1/2 + 5/6) / 2.
        let some = Tensor::from_slice(&[2.0f32, -1.0, 0.5, -1.0, -1.0, -1.0, -1.0, -1.0]);
        let b = balanced_accuracy(&some, &y).unwrap().unwrap();
        assert!((b - 2.0 / 3.0).abs() < 1e-12, "{b}");
        // Undefined with one class only.
        let ones = Tensor::ones([3], (Kind::Float, Device::Cpu));
        assert_eq!(balanced_accuracy(&ones, &ones).unwrap(), None);
    }
}
