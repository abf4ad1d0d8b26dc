//! Tasks: what each head predicts, its masked loss and its metrics.
//!
//! **Targets.** The targets of `T` tasks are one float tensor `[N, T]`, column `t` for task `t`
//! (the order of the task list): a binary task holds 0 or 1, a multi-class task the class index
//! as a float (exact up to 2^24), a regression task the value. A missing label (the chapter's
//! "?") is NaN. One tensor keeps a multi-task dataset a plain
//! [`TensorDataset`](core_tensor::data::TensorDataset), batched by one `index_select`.
//!
//! **Masked loss.** Each task's loss is the mean of its per-example loss over the examples of
//! the batch whose label is present, and nothing else: `sum(mask · ℓ) / max(count, 1)`. Missing
//! targets are replaced by a valid placeholder (0) *before* the loss, so that no NaN enters the
//! graph (multiplying a NaN loss by a zero mask would give NaN, and so would its gradient). A
//! batch where a task has no label gives that task a loss of exactly 0 with zero gradients.

use core_tensor::{Error, Result};
use serde::{Deserialize, Serialize};
use tch::{Kind, Reduction, Tensor};

/// The type of a task's output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskKind {
    /// Yes/no: one logit, binary cross-entropy.
    Binary,
    /// One of `classes` classes: `classes` logits, cross-entropy.
    Multiclass,
    /// A real value: one output, mean squared error.
    Regression,
}

/// A metric of one task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MetricKind {
    /// Fraction correct (binary: logit > 0 means 1). Higher is better. On a rare class it is
    /// fooled by the base rate: a network that always says "absent" scores the absent rate.
    Accuracy,
    /// Binary tasks: the mean of the true-positive and true-negative rates at logit > 0, so that
    /// answering one class always scores 50% whatever the base rate. Higher is better.
    #[serde(rename = "balanced_accuracy")]
    BalancedAccuracy,
    /// Area under the ROC curve (binary tasks only). Higher is better.
    Auc,
    /// Mean absolute error (regression). Lower is better.
    Mae,
    /// Root mean squared error (regression). Lower is better.
    Rmse,
    /// The task's own loss, averaged over present labels. Lower is better.
    Loss,
}

impl MetricKind {
    /// Whether larger values are better.
    pub fn higher_is_better(self) -> bool {
        matches!(
            self,
            MetricKind::Accuracy | MetricKind::BalancedAccuracy | MetricKind::Auc
        )
    }

    /// The metric's direction as early stopping and [`crate::gain`] read it.
    pub fn goal(self) -> core_tensor::train::Goal {
        if self.higher_is_better() {
            core_tensor::train::Goal::Maximize
        } else {
            core_tensor::train::Goal::Minimize
        }
    }
}

/// One task, as read from an experiment's TOML:
/// `{ name = "digit", kind = "multiclass", classes = 10 }`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskSpec {
    /// Name: letters, digits, `_` and `-`, unique among the tasks. The head's variables are
    /// `task_heads.<name>.weight` and `.bias`.
    pub name: String,
    /// What the head predicts.
    pub kind: TaskKind,
    /// Number of classes: required for `multiclass` (at least 2), absent otherwise.
    #[serde(default)]
    pub classes: Option<i64>,
    /// The metric that judges the task; by default AUC for binary tasks (it needs no threshold
    /// and a rare positive class does not inflate it, as it does accuracy), accuracy for
    /// multi-class tasks, MAE for regression.
    #[serde(default)]
    pub metric: Option<MetricKind>,
}

impl TaskSpec {
    /// A binary task.
    pub fn binary(name: &str) -> Self {
        TaskSpec {
            name: name.into(),
            kind: TaskKind::Binary,
            classes: None,
            metric: None,
        }
    }

    /// A multi-class task with `classes` classes.
    pub fn multiclass(name: &str, classes: i64) -> Self {
        TaskSpec {
            name: name.into(),
            kind: TaskKind::Multiclass,
            classes: Some(classes),
            metric: None,
        }
    }

    /// A regression task.
    pub fn regression(name: &str) -> Self {
        TaskSpec {
            name: name.into(),
            kind: TaskKind::Regression,
            classes: None,
            metric: None,
        }
    }

    /// Width of the head's output.
    pub fn outputs(&self) -> i64 {
        match self.kind {
            TaskKind::Multiclass => self.classes.unwrap_or(0),
            TaskKind::Binary | TaskKind::Regression => 1,
        }
    }

    /// The metric that judges the task ([`TaskSpec::metric`] or the kind's default).
    pub fn primary_metric(&self) -> MetricKind {
        self.metric.unwrap_or(match self.kind {
            TaskKind::Binary => MetricKind::Auc,
            TaskKind::Multiclass => MetricKind::Accuracy,
            TaskKind::Regression => MetricKind::Mae,
        })
    }

    /// Every metric [`crate::train::evaluate`] reports for this task.
    pub fn metrics(&self) -> Vec<MetricKind> {
        match self.kind {
            TaskKind::Binary => vec![
                MetricKind::Accuracy,
                MetricKind::BalancedAccuracy,
                MetricKind::Auc,
                MetricKind::Loss,
            ],
            TaskKind::Multiclass => vec![MetricKind::Accuracy, MetricKind::Loss],
            TaskKind::Regression => vec![MetricKind::Mae, MetricKind::Rmse, MetricKind::Loss],
        }
    }

    /// Checks the task; `at` is its place in the configuration (`tasks[2]`), used in errors.
    pub fn validate(&self, at: &str) -> Result<()> {
        let bad = |f: &str, why: String| Err(Error::InvalidArgument(format!("{at}.{f}: {why}")));
        if self.name.is_empty()
            || !self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return bad(
                "name",
                format!(
                    "{:?} must be non-empty letters, digits, '_' or '-' (it names variables)",
                    self.name
                ),
            );
        }
        match (self.kind, self.classes) {
            (TaskKind::Multiclass, None) => {
                return bad("classes", "a multiclass task needs `classes`".into());
            }
            (TaskKind::Multiclass, Some(c)) if c < 2 => {
                return bad("classes", format!("must be at least 2, got {c}"));
            }
            (TaskKind::Binary | TaskKind::Regression, Some(_)) => {
                return bad(
                    "classes",
                    "only multiclass tasks take `classes` (a binary task has one logit)".into(),
                );
            }
            _ => {}
        }
        if let Some(m) = self.metric
            && !self.metrics().contains(&m)
        {
            return bad(
                "metric",
                format!("{m:?} does not apply to a {:?} task", self.kind),
            );
        }
        Ok(())
    }

    /// The masked loss of this task: `(sum, count)` where `sum` is the summed per-example loss
    /// over present labels (a scalar with a graph to `output`) and `count` the number of present
    /// labels (a float scalar). The task's loss is `sum / max(count, 1)`; see the module
    /// documentation.
    ///
    /// `output` is the head's output `[B, outputs()]`, `target` the task's column `[B]` with NaN
    /// for missing labels.
    pub fn masked_loss(&self, output: &Tensor, target: &Tensor) -> Result<(Tensor, Tensor)> {
        let b = output.size().first().copied().unwrap_or(-1);
        if output.size() != [b, self.outputs()] || target.size() != [b] {
            return Err(Error::InvalidArgument(format!(
                "task {:?}: output {:?} and target {:?} must be [B, {}] and [B]",
                self.name,
                output.size(),
                target.size(),
                self.outputs()
            )));
        }
        let target = target.f_to_kind(Kind::Float)?;
        let present = target.f_isnan()?.f_logical_not()?;
        let safe = target.f_nan_to_num(0.0, None, None)?;
        let per_example = match self.kind {
            TaskKind::Binary => output
                .f_squeeze_dim(1)?
                .to_kind(Kind::Float)
                .f_binary_cross_entropy_with_logits::<Tensor>(&safe, None, None, Reduction::None)?,
            TaskKind::Multiclass => output.to_kind(Kind::Float).f_cross_entropy_loss::<Tensor>(
                &safe.f_to_kind(Kind::Int64)?,
                None,
                Reduction::None,
                -100,
                0.0,
            )?,
            TaskKind::Regression => {
                let d = output.f_squeeze_dim(1)?.to_kind(Kind::Float) - &safe;
                &d * &d
            }
        };
        let mask = present.f_to_kind(Kind::Float)?;
        let sum = (per_example * &mask).f_sum(Kind::Float)?;
        let count = mask.f_sum(Kind::Float)?;
        Ok((sum, count))
    }

    /// The task's loss on a batch: [`TaskSpec::masked_loss`]'s `sum / max(count, 1)`.
    pub fn loss(&self, output: &Tensor, target: &Tensor) -> Result<Tensor> {
        let (sum, count) = self.masked_loss(output, target)?;
        Ok(sum / count.clamp_min(1.0))
    }
}

/// Checks a task list: each task, and that names are unique. Errors name `tasks[i].field`.
pub fn validate_tasks(tasks: &[TaskSpec]) -> Result<()> {
    if tasks.is_empty() {
        return Err(Error::InvalidArgument(
            "tasks: at least one task is needed".into(),
        ));
    }
    for (i, t) in tasks.iter().enumerate() {
        t.validate(&format!("tasks[{i}]"))?;
        if tasks[..i].iter().any(|u| u.name == t.name) {
            return Err(Error::InvalidArgument(format!(
                "tasks[{i}].name: {:?} is used by an earlier task",
                t.name
            )));
        }
    }
    Ok(())
}

/// Hides each label of `targets` (`[N, T]` float) independently with probability `fraction`
/// (sets it to NaN), from `seed` alone; labels already missing stay missing.
pub fn hide_labels(targets: &Tensor, fraction: f64, seed: u64) -> Result<Tensor> {
    if !(0.0..=1.0).contains(&fraction) {
        return Err(Error::InvalidArgument(format!(
            "hide_labels: fraction must be in [0, 1], got {fraction}"
        )));
    }
    let u = core_tensor::data::uniform(targets.numel() as i64, seed, targets.device())
        .f_view(targets.size().as_slice())?;
    let hide = u.f_lt(fraction)?;
    Ok(targets
        .f_to_kind(Kind::Float)?
        .f_masked_fill(&hide, f64::NAN)?)
}

/// Indices (int64 `[M]`, increasing) of the rows of `targets` (`[N, T]`) with every label
/// present: the examples a "fully labelled only" baseline trains on.
pub fn fully_labelled(targets: &Tensor) -> Result<Tensor> {
    let complete = targets.f_isnan()?.f_any_dim(1, false)?.f_logical_not()?;
    Ok(complete.f_nonzero()?.f_squeeze_dim(1)?)
}

/// Fraction of the labels of `targets` that are present (not NaN), per column.
pub fn label_coverage(targets: &Tensor) -> Result<Vec<f64>> {
    let present = targets
        .f_isnan()?
        .f_logical_not()?
        .f_to_kind(Kind::Double)?
        .f_mean_dim(0, false, Kind::Double)?;
    Ok(Vec::<f64>::try_from(&present)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    fn grad_of(task: &TaskSpec, out: &Tensor, target: &Tensor) -> (f64, Tensor) {
        let out = out.detach().set_requires_grad(true);
        let loss = task.loss(&out, target).unwrap();
        loss.backward();
        (loss.double_value(&[]), out.grad())
    }

    #[test]
    fn masked_loss_equals_the_loss_over_present_labels() {
        let nan = f32::NAN;
        // Binary.
        let logits = Tensor::from_slice(&[0.3f32, -1.2, 2.0, 0.7]).view([4, 1]);
        let target = Tensor::from_slice(&[1.0f32, nan, 0.0, nan]);
        let (got, _) = grad_of(&TaskSpec::binary("b"), &logits, &target);
        let want = logits
            .view([4])
            .index_select(0, &Tensor::from_slice(&[0i64, 2]))
            .binary_cross_entropy_with_logits::<Tensor>(
                &Tensor::from_slice(&[1.0f32, 0.0]),
                None,
                None,
                Reduction::Mean,
            )
            .double_value(&[]);
        assert!((got - want).abs() < 1e-6, "{got} vs {want}");

        // Multi-class.
        let logits = Tensor::from_slice2(&[[1.0f32, 0.0, -1.0], [0.2, 0.3, 0.4], [2.0, 1.0, 0.0]]);
        let target = Tensor::from_slice(&[2.0f32, nan, 0.0]);
        let (got, grad) = grad_of(&TaskSpec::multiclass("m", 3), &logits, &target);
        let rows = Tensor::from_slice(&[0i64, 2]);
        let want = logits
            .index_select(0, &rows)
            .cross_entropy_for_logits(&Tensor::from_slice(&[2i64, 0]))
            .double_value(&[]);
        assert!((got - want).abs() < 1e-6, "{got} vs {want}");
        let row1: Vec<f32> = Vec::try_from(grad.get(1)).unwrap();
        assert_eq!(row1, [0.0, 0.0, 0.0], "a missing label teaches nothing");

        // Regression: (1.5 - 1)^2 and (-1 - 1)^2 over 2 present labels.
        let out = Tensor::from_slice(&[1.5f32, 9.0, -1.0]).view([3, 1]);
        let target = Tensor::from_slice(&[1.0f32, nan, 1.0]);
        let (got, _) = grad_of(&TaskSpec::regression("r"), &out, &target);
        assert!((got - (0.25 + 4.0) / 2.0).abs() < 1e-6, "{got}");
    }

    #[test]
    fn a_task_without_labels_adds_zero_and_no_nan() {
        let nan = f32::NAN;
        let target = Tensor::from_slice(&[nan, nan, nan]);
        for task in [
            TaskSpec::binary("b"),
            TaskSpec::multiclass("m", 4),
            TaskSpec::regression("r"),
        ] {
            let out = Tensor::randn([3, task.outputs()], (Kind::Float, Device::Cpu));
            let (loss, grad) = grad_of(&task, &out, &target);
            assert_eq!(loss, 0.0, "{}", task.name);
            assert!(grad.defined());
            assert_eq!(grad.abs().sum(Kind::Float).double_value(&[]), 0.0);
            assert_eq!(grad.isnan().any().int64_value(&[]), 0, "{}", task.name);
        }
    }

    #[test]
    fn bad_tasks_name_the_field() {
        let err = |tasks: &[TaskSpec]| validate_tasks(tasks).unwrap_err().to_string();
        assert!(err(&[]).contains("tasks"));
        let mut m = TaskSpec::multiclass("m", 1);
        assert!(err(&[TaskSpec::binary("a"), m.clone()]).contains("tasks[1].classes"));
        m.classes = None;
        assert!(err(&[m]).contains("tasks[0].classes"));
        assert!(err(&[TaskSpec::binary("a.b")]).contains("tasks[0].name"));
        let e = err(&[TaskSpec::binary("a"), TaskSpec::regression("a")]);
        assert!(e.contains("tasks[1].name"), "{e}");
        let mut r = TaskSpec::regression("r");
        r.metric = Some(MetricKind::Auc);
        assert!(err(&[r]).contains("tasks[0].metric"));
        let parsed: Result<TaskSpec, _> =
            toml::from_str("name = \"a\"\nkind = \"binary\"\nklasses = 3");
        assert!(parsed.unwrap_err().to_string().contains("klasses"));
        let ok: TaskSpec =
            toml::from_str("name = \"digit\"\nkind = \"multiclass\"\nclasses = 10").unwrap();
        assert_eq!(ok, TaskSpec::multiclass("digit", 10));
    }

    #[test]
    fn hidden_labels_follow_the_seed_and_fraction() {
        let targets = Tensor::ones([1000, 4], (Kind::Float, Device::Cpu));
        let a = hide_labels(&targets, 0.5, 3).unwrap();
        let b = hide_labels(&targets, 0.5, 3).unwrap();
        assert!(a.isnan().equal(&b.isnan()));
        let cov = label_coverage(&a).unwrap();
        assert!(cov.iter().all(|c| (c - 0.5).abs() < 0.06), "{cov:?}");
        let full = fully_labelled(&a).unwrap();
        let expect = (a.isnan().any_dim(1, false).logical_not())
            .sum(Kind::Int64)
            .int64_value(&[]);
        assert_eq!(full.size(), [expect]);
        assert_eq!(
            label_coverage(&hide_labels(&targets, 0.0, 3).unwrap()).unwrap(),
            [1.0; 4]
        );
    }
}
