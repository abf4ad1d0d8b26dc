//! [`Staged`]: your own tch modules as a [`Classifier`], so that every transfer strategy,
//! feature extraction and freezing works on a network that is not in the zoo.
//!
//! A network is a backbone of ordered stages and a linear head. Give each stage a name, the
//! module that computes it (anything that implements [`ModuleT`]: an `nn::seq_t()`, your own
//! struct) and, when its variables are not all under `<name>.`, the variable-name prefixes it
//! owns. The stages run in order; the last one's output, flattened from dimension 1, is the
//! features the head sees.
//!
//! ```
//! use pretrained_zoo::arch::{Classifier, Staged, check_stage_membership, freeze_stages, BatchNormPolicy};
//! use tch::nn::{self, ModuleT};
//!
//! let vs = nn::VarStore::new(tch::Device::Cpu);
//! let p = vs.root();
//! // A stem made of two modules at the root (`conv1`, `bn1`), as torchvision names them.
//! let stem = nn::seq_t()
//!     .add(nn::conv2d(&p / "conv1", 1, 8, 3, Default::default()))
//!     .add(nn::batch_norm2d(&p / "bn1", 8, Default::default()))
//!     .add_fn(|x| x.relu().max_pool2d_default(2));
//! let block = nn::seq_t()
//!     .add(nn::conv2d(&p / "block" / "conv", 8, 16, 3, Default::default()))
//!     .add_fn(|x| x.relu().adaptive_avg_pool2d([1, 1]));
//! let mut net = Staged::builder()
//!     .stage_with("stem", &["conv1", "bn1"], stem)
//!     .stage("block", block)
//!     .head(&p / "fc", 16, 10)?;
//! check_stage_membership(&net, &vs)?;
//! assert_eq!(net.stages(), ["stem", "block", "fc"]);
//!
//! let x = tch::Tensor::zeros([2, 1, 12, 12], tch::kind::FLOAT_CPU);
//! assert_eq!(net.forward_t(&x, false).size(), [2, 10]);
//! freeze_stages(&mut net, &vs, 1, BatchNormPolicy::FrozenStagesEval)?; // conv1 and bn1
//! net.replace_head(3)?; // `fc.weight` is now [3, 16]
//! # Ok::<(), core_tensor::Error>(())
//! ```

use core_tensor::{Error, Result};
use tch::Tensor;
use tch::nn::{self, ModuleT};

use super::{Classifier, EvalStages, layers, positive, replace_linear};

/// One stage of a [`Staged`] network.
#[derive(Debug)]
struct Stage {
    name: String,
    members: Vec<String>,
    module: Box<dyn ModuleT>,
}

/// A [`Classifier`] made of your modules: see the [module documentation](self).
#[derive(Debug)]
pub struct Staged {
    stages: Vec<Stage>,
    head_name: String,
    head: nn::Linear,
    classes: i64,
    feature_dim: i64,
    eval: EvalStages,
}

/// Collects the stages of a [`Staged`] network; [`StagedBuilder::head`] finishes it.
#[derive(Debug, Default)]
pub struct StagedBuilder {
    stages: Vec<Stage>,
}

impl Staged {
    /// Starts a network; add stages input to output, then its head.
    pub fn builder() -> StagedBuilder {
        StagedBuilder::default()
    }
}

impl StagedBuilder {
    /// Adds the stage `name`, computed by `module`, owning the variables under `name.`.
    pub fn stage(self, name: &str, module: impl ModuleT + 'static) -> Self {
        self.stage_with(name, &[name], module)
    }

    /// Adds the stage `name`, computed by `module`, owning the variables under each of
    /// `members` (prefixes of variable names, whole components: `bn1` owns `bn1.weight`).
    pub fn stage_with(
        mut self,
        name: &str,
        members: &[&str],
        module: impl ModuleT + 'static,
    ) -> Self {
        self.stages.push(Stage {
            name: name.to_string(),
            members: members.iter().map(|m| m.to_string()).collect(),
            module: Box::new(module),
        });
        self
    }

    /// Ends the network with a linear head of `classes` outputs on `feature_dim` features,
    /// created at `p` with PyTorch's default initialisation; the head's stage is named after
    /// the last component of `p` (`fc` for `root / "fc"`).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if there is no stage, two stages share a name, a stage has no
    /// member, `p` is the root, or `feature_dim` or `classes` is below 1.
    pub fn head(self, p: nn::Path, feature_dim: i64, classes: i64) -> Result<Staged> {
        positive("feature_dim", feature_dim)?;
        positive("classes", classes)?;
        let bad = |why: String| Err(Error::InvalidArgument(format!("Staged network: {why}")));
        if self.stages.is_empty() {
            return bad("add at least one stage before the head".into());
        }
        let head_name: String = p.components().collect::<Vec<_>>().join(".");
        if head_name.is_empty() {
            return bad(
                "the head needs a name: create it at `root / \"fc\"`, not at the root".into(),
            );
        }
        let mut names: Vec<&str> = self.stages.iter().map(|s| s.name.as_str()).collect();
        names.push(&head_name);
        for (i, name) in names.iter().enumerate() {
            if names[..i].contains(name) {
                return bad(format!("two stages are named `{name}`"));
            }
        }
        if let Some(s) = self.stages.iter().find(|s| s.members.is_empty()) {
            return bad(format!("stage `{}` lists no member prefix", s.name));
        }
        let head = layers::linear(p, feature_dim, classes);
        Ok(Staged {
            stages: self.stages,
            head_name,
            head,
            classes,
            feature_dim,
            eval: EvalStages::default(),
        })
    }
}

impl Classifier for Staged {
    fn stages(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.stages.iter().map(|s| s.name.as_str()).collect();
        names.push(&self.head_name);
        names
    }

    fn stage_members(&self, stage: &str) -> Vec<String> {
        if stage == self.head_name {
            return vec![self.head_name.clone()];
        }
        self.stages
            .iter()
            .find(|s| s.name == stage)
            .map(|s| s.members.clone())
            .unwrap_or_default()
    }

    fn head(&self) -> &nn::Linear {
        &self.head
    }

    /// Every stage in order, each with `train` unless it is an evaluation stage; the last
    /// output flattened to `[N, feature_dim]`.
    fn features(&self, xs: &Tensor, train: bool) -> Tensor {
        let mut x = xs.shallow_clone();
        for stage in &self.stages {
            x = stage
                .module
                .forward_t(&x, self.eval.train(&stage.name, train));
        }
        x.flatten(1, -1)
    }

    fn feature_dim(&self) -> i64 {
        self.feature_dim
    }

    fn classes(&self) -> i64 {
        self.classes
    }

    fn replace_head(&mut self, classes: i64) -> Result<()> {
        replace_linear(&mut self.head, classes)?;
        self.classes = classes;
        Ok(())
    }

    fn set_eval_stages(&mut self, stages: &[&str]) -> Result<()> {
        self.eval = EvalStages::new(&self.stages(), stages)?;
        Ok(())
    }

    fn eval_stages(&self) -> Vec<String> {
        self.eval.names()
    }
}

impl ModuleT for Staged {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        self.features(xs, train).apply(&self.head)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::{check_stage_membership, in_head, stage_of};

    fn net(vs: &nn::VarStore) -> Staged {
        let p = vs.root();
        let stem = nn::seq_t()
            .add(nn::linear(&p / "conv1", 6, 5, Default::default()))
            .add(nn::batch_norm1d(&p / "bn1", 5, Default::default()));
        let body = nn::seq_t().add(nn::linear(&p / "body" / "a", 5, 4, Default::default()));
        Staged::builder()
            .stage_with("stem", &["conv1", "bn1"], stem)
            .stage("body", body)
            .head(&p / "fc", 4, 3)
            .unwrap()
    }

    #[test]
    fn stages_partition_the_variables_and_the_head_is_replaceable() {
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let mut net = net(&vs);
        check_stage_membership(&net, &vs).unwrap();
        assert_eq!(stage_of(&net, "bn1.running_mean"), Some(0));
        assert_eq!(stage_of(&net, "body.a.weight"), Some(1));
        assert!(in_head(&net, "fc.bias"));
        let x = Tensor::randn([4, 6], tch::kind::FLOAT_CPU);
        assert_eq!(net.forward_t(&x, true).size(), [4, 3]);
        net.replace_head(7).unwrap();
        assert_eq!(vs.variables()["fc.weight"].size(), [7, 4]);
        assert_eq!(net.forward_t(&x, false).size(), [4, 7]);
    }

    #[test]
    fn evaluation_stages_leave_batch_norm_statistics_alone() {
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let mut net = net(&vs);
        let x = Tensor::randn([8, 6], tch::kind::FLOAT_CPU);
        let before = vs.variables()["bn1.running_mean"].copy();
        net.set_eval_stages(&["stem"]).unwrap();
        let _ = net.forward_t(&x, true);
        assert!(vs.variables()["bn1.running_mean"].equal(&before));
        net.set_eval_stages(&[]).unwrap();
        let _ = net.forward_t(&x, true);
        assert!(!vs.variables()["bn1.running_mean"].equal(&before));
    }

    #[test]
    fn a_variable_in_no_stage_is_named() {
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let p = vs.root();
        let stem = nn::seq_t()
            .add(nn::linear(&p / "conv1", 6, 5, Default::default()))
            .add(nn::batch_norm1d(&p / "bn1", 5, Default::default()));
        // `bn1` is forgotten in the members.
        let net = Staged::builder()
            .stage_with("stem", &["conv1"], stem)
            .head(&p / "fc", 5, 2)
            .unwrap();
        let err = check_stage_membership(&net, &vs).unwrap_err().to_string();
        assert!(
            err.contains("bn1.weight") && err.contains("no stage"),
            "{err}"
        );
    }

    #[test]
    fn bad_builds_say_what_is_wrong() {
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let p = vs.root();
        let err = Staged::builder()
            .head(&p / "fc", 4, 2)
            .unwrap_err()
            .to_string();
        assert!(err.contains("at least one stage"), "{err}");
        let err = Staged::builder()
            .stage("fc", nn::seq_t())
            .head(&p / "fc", 4, 2)
            .unwrap_err()
            .to_string();
        assert!(err.contains("two stages are named `fc`"), "{err}");
        let err = Staged::builder()
            .stage("a", nn::seq_t())
            .head(&p / "fc", 4, 0)
            .unwrap_err()
            .to_string();
        assert!(err.contains("classes"), "{err}");
    }
}
