//! Hard parameter sharing: one backbone (the trunk) and one linear head per task.
//!
//! The trunk is any [`Architecture`] — a zoo [`ArchConfig`](pretrained_zoo::arch::ArchConfig)
//! or your own network (for instance your tch modules wrapped in a
//! [`Staged`](pretrained_zoo::arch::Staged)) — built at the root of the `VarStore`, so its
//! variables keep their names (`stem.conv.weight`, `fc1.weight`, …) and pre-trained weights
//! load into it unchanged. Only [`Classifier::features`] is used; the trunk's own head (its
//! last stage) is frozen (left out of every optimizer) and never runs, so its `classes` does
//! not matter. Task `t`'s head is `task_heads.<name>` (`[outputs, feature_dim]` weight and a
//! bias, PyTorch's default initialisation).

use core_tensor::{Error, Result};
use pretrained_zoo::arch::{
    Architecture, Classifier, check_stage_membership, in_head, in_stage, stage_of,
};
use tch::Tensor;
use tch::nn::{self, Module, VarStore};

use crate::task::{TaskSpec, validate_tasks};

/// The prefix of every task head's variables.
pub const TASK_HEADS: &str = "task_heads";

/// A shared trunk and one head per task.
pub struct MultiTaskNet {
    trunk: Box<dyn Classifier>,
    heads: Vec<nn::Linear>,
    tasks: Vec<TaskSpec>,
}

impl std::fmt::Debug for MultiTaskNet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MultiTaskNet")
            .field("stages", &self.trunk.stages())
            .field("tasks", &self.tasks)
            .finish()
    }
}

/// The trainable variables of a [`MultiTaskNet`], by role (what balancers need).
#[derive(Debug)]
pub struct SharedParams {
    /// The trunk's trainable variables (every task's gradient reaches them).
    pub shared: Vec<Tensor>,
    /// The trainable variables of the trunk's last stage with any (GradNorm's `W`).
    pub last_shared: Vec<Tensor>,
    /// Each task's head variables, in task order.
    pub heads: Vec<Vec<Tensor>>,
}

impl MultiTaskNet {
    /// Builds the trunk at the root of `vs` and a head per task under [`TASK_HEADS`]. The
    /// trunk's stages must partition its variables (see
    /// [`check_stage_membership`](pretrained_zoo::arch::check_stage_membership)).
    pub fn new(vs: &VarStore, arch: &dyn Architecture, tasks: &[TaskSpec]) -> Result<Self> {
        validate_tasks(tasks)?;
        let root = vs.root();
        if !vs.variables().is_empty() {
            return Err(Error::InvalidArgument(
                "MultiTaskNet::new needs an empty VarStore (the trunk is built at its root)".into(),
            ));
        }
        let trunk = arch.build(&root)?;
        check_stage_membership(&*trunk, vs).map_err(|e| e.about("multi-task trunk"))?;
        let head_stage = *trunk.stages().last().expect("two stages or more");
        let head_members = trunk.stage_members(head_stage);
        let members: Vec<&str> = head_members.iter().map(String::as_str).collect();
        core_tensor::optim::freeze(vs, &members);
        let dim = trunk.feature_dim();
        let heads = tasks
            .iter()
            .map(|t| {
                let p = &root / TASK_HEADS / t.name.as_str();
                nn::linear(p, dim, t.outputs(), Default::default())
            })
            .collect();
        Ok(MultiTaskNet {
            trunk,
            heads,
            tasks: tasks.to_vec(),
        })
    }

    /// The tasks, in head order (= target column order).
    pub fn tasks(&self) -> &[TaskSpec] {
        &self.tasks
    }

    /// The shared backbone.
    pub fn trunk(&self) -> &dyn Classifier {
        self.trunk.as_ref()
    }

    /// The shared backbone, mutable (to set evaluation stages, freeze stages).
    pub fn trunk_mut(&mut self) -> &mut dyn Classifier {
        self.trunk.as_mut()
    }

    /// The shared features `[B, feature_dim]`.
    pub fn features(&self, xs: &Tensor, train: bool) -> Tensor {
        self.trunk.features(xs, train)
    }

    /// Every head applied to `features`: one `[B, outputs]` tensor per task.
    pub fn heads(&self, features: &Tensor) -> Vec<Tensor> {
        self.heads.iter().map(|h| h.forward(features)).collect()
    }

    /// The outputs of every task on `xs`: one `[B, outputs]` tensor per task.
    pub fn forward_t(&self, xs: &Tensor, train: bool) -> Vec<Tensor> {
        self.heads(&self.features(xs, train))
    }

    /// The variables by role; only those that require gradients. `vs` must be the store the
    /// net was built in.
    pub fn params(&self, vs: &VarStore) -> SharedParams {
        let mut vars: Vec<(String, Tensor)> = vs
            .variables()
            .into_iter()
            .filter(|(name, t)| t.requires_grad() && !in_head(&*self.trunk, name))
            .collect();
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        let backbone = self.trunk.stages().len() - 1;
        let trunk = &*self.trunk;
        let shared: Vec<(String, Tensor, usize)> = vars
            .iter()
            .filter_map(|(n, t)| {
                stage_of(trunk, n)
                    .filter(|s| *s < backbone)
                    .map(|s| (n.clone(), t.shallow_clone(), s))
            })
            .collect();
        let last_shared = (0..backbone)
            .rev()
            .map(|s| {
                shared
                    .iter()
                    .filter(|(_, _, stage)| *stage == s)
                    .map(|(_, t, _)| t.shallow_clone())
                    .collect::<Vec<_>>()
            })
            .find(|v| !v.is_empty())
            .unwrap_or_default();
        let heads = self
            .tasks
            .iter()
            .map(|t| {
                let prefix = format!("{TASK_HEADS}.{}", t.name);
                vars.iter()
                    .filter(|(n, _)| in_stage(n, &prefix))
                    .map(|(_, t)| t.shallow_clone())
                    .collect()
            })
            .collect();
        SharedParams {
            shared: shared.into_iter().map(|(_, t, _)| t).collect(),
            last_shared,
            heads,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretrained_zoo::arch::{ArchConfig, MlpConfig};
    use tch::{Device, Kind};

    #[test]
    fn heads_are_named_per_task_and_the_zoo_head_is_frozen() {
        let vs = VarStore::new(Device::Cpu);
        let arch = ArchConfig::Mlp(MlpConfig {
            inputs: 6,
            hidden: vec![5, 4],
            classes: 1,
        });
        let tasks = [
            TaskSpec::binary("a"),
            TaskSpec::multiclass("b", 3),
            TaskSpec::regression("c"),
        ];
        let net = MultiTaskNet::new(&vs, &arch, &tasks).unwrap();
        let mut names: Vec<String> = vs.variables().into_keys().collect();
        names.sort();
        assert_eq!(
            names,
            [
                "fc1.bias",
                "fc1.weight",
                "fc2.bias",
                "fc2.weight",
                "head.bias",
                "head.weight",
                "task_heads.a.bias",
                "task_heads.a.weight",
                "task_heads.b.bias",
                "task_heads.b.weight",
                "task_heads.c.bias",
                "task_heads.c.weight",
            ]
        );
        assert!(!vs.variables()["head.weight"].requires_grad());
        let outs = net.forward_t(&Tensor::zeros([7, 6], (Kind::Float, Device::Cpu)), true);
        let sizes: Vec<Vec<i64>> = outs.iter().map(Tensor::size).collect();
        assert_eq!(sizes, [vec![7, 1], vec![7, 3], vec![7, 1]]);
        let p = net.params(&vs);
        assert_eq!(p.shared.len(), 4);
        assert_eq!(p.last_shared.len(), 2);
        assert_eq!(
            p.last_shared[0].size()[0],
            4,
            "fc2 is the last shared stage"
        );
        assert_eq!(p.heads.iter().map(Vec::len).collect::<Vec<_>>(), [2, 2, 2]);
        assert!(
            MultiTaskNet::new(&vs, &arch, &tasks).is_err(),
            "store in use"
        );
    }
}
